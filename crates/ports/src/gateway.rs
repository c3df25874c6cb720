//! The payment gateway: a paid third party (Stripe, or the built-in fake that speaks
//! Stripe's protocol). Every charge carries an idempotency key, so asking twice
//! never charges twice; replaying a key is also how a lost answer is recovered.

use async_trait::async_trait;
use boxoffice_domain::Money;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRequest {
    /// One key per order: the gateway charges at most once under it.
    pub idempotency_key: String,
    pub amount: Money,
    /// The buyer's card token (`tok_visa`, …).
    pub token: String,
    pub order_id: String,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    Succeeded {
        charge_id: String,
    },
    /// The card was declined: final for this order (`card_declined`, `insufficient_funds`, …).
    Declined {
        code: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// Worth retrying with the same key: timeouts, 5xx, rate limits, network.
    #[error("transient gateway error: {0}")]
    Transient(String),
    /// Retrying will not help: a malformed request, bad credentials, key misuse.
    #[error("gateway refused the request: {0}")]
    Rejected(String),
}

/// A charge as the gateway recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRecord {
    pub charge_id: String,
    pub idempotency_key: String,
    pub order_id: String,
    pub amount: Money,
    /// `succeeded` or `declined`.
    pub outcome: String,
    pub refunded: bool,
}

#[async_trait]
pub trait PaymentGateway: Send + Sync + std::fmt::Debug + 'static {
    async fn charge(&self, req: &ChargeRequest) -> Result<ChargeOutcome, GatewayError>;
    /// Refunds a succeeded charge in full; refunding twice under one key is one refund.
    async fn refund(&self, charge_id: &str, idempotency_key: &str) -> Result<(), GatewayError>;
    /// Every charge the gateway holds, oldest first.
    async fn charges(&self) -> Result<Vec<ChargeRecord>, GatewayError>;
}
