//! The payment gateway: a paid third party (Stripe, or the built-in fake that speaks
//! Stripe's protocol). Every payment carries an idempotency key, so asking twice
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

/// What the buyer must do before the payment can go on (3-D Secure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextAction {
    /// Stripe's `next_action.type`: `redirect_to_url`, `use_stripe_sdk`, …
    pub kind: String,
    /// The page to send the buyer to (`redirect_to_url.url`, or a 3-D Secure
    /// redirect's `use_stripe_sdk.stripe_js`), when there is one.
    pub url: Option<String>,
    /// For Stripe.js (`handleNextAction`).
    pub client_secret: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    /// The money is taken. `charge_id` is what a refund names (a PaymentIntent id).
    Succeeded { charge_id: String },
    /// The card was declined: final for this order (`card_declined`, `insufficient_funds`, …).
    Declined { code: String },
    /// The buyer must act first (3-D Secure); the payment waits for them.
    RequiresAction {
        payment_id: String,
        next_action: NextAction,
    },
    /// Accepted and settling later (delayed payment methods).
    Processing { payment_id: String },
}

impl ChargeOutcome {
    /// Whether the payment is settled (taken or refused for good).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            ChargeOutcome::Succeeded { .. } | ChargeOutcome::Declined { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// Worth retrying with the same key: timeouts, 5xx, rate limits, network.
    #[error("transient gateway error: {0}")]
    Transient(String),
    /// Another request under the same key is in flight (another node, the
    /// reconciler): its answer settles the payment. Not a failure of the gateway.
    #[error("another request under this key is in progress: {0}")]
    Busy(String),
    /// Retrying will not help: a malformed request, bad credentials, key misuse.
    #[error("gateway refused the request: {0}")]
    Rejected(String),
}

/// Whether a payment was ever asked for under an idempotency key (see
/// [`PaymentGateway::close_key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Nothing had used the key: it is closed now, so no charge can ever be made
    /// under it (a request under it still in flight is refused when it arrives).
    Unused,
    /// A request under the key reached the gateway (perhaps still in progress): a
    /// replay of that request answers what became of it, and never charges again.
    Used,
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
    /// Refunded in full.
    pub refunded: bool,
    /// How much of it was refunded (several partial refunds add up).
    pub amount_refunded: i64,
    /// How many refunds were made of it.
    pub refunds: u64,
}

#[async_trait]
pub trait PaymentGateway: Send + Sync + std::fmt::Debug + 'static {
    /// Creates and confirms the payment under `req.idempotency_key`; repeated, it
    /// answers where that payment stands now (the first request's payment, never a
    /// second one).
    async fn charge(&self, req: &ChargeRequest) -> Result<ChargeOutcome, GatewayError>;
    /// Where the payment `payment_id` (a `Succeeded` charge id, or the id of one
    /// that waits) stands now: a read, never a charge.
    async fn payment(&self, payment_id: &str) -> Result<ChargeOutcome, GatewayError>;
    /// Gives up on a payment the buyer never completed (`payment_id` from
    /// `RequiresAction` or `Processing`). Answers where it stands afterwards:
    /// `Declined` when cancelled, `Succeeded` when it had gone through meanwhile, or
    /// still `Processing` (a payment in flight cannot be cancelled).
    async fn cancel(&self, payment_id: &str) -> Result<ChargeOutcome, GatewayError>;
    /// The next action of a payment waiting for its buyer, looked up by order id
    /// (`None` when no payment of that order waits for one).
    async fn next_action(&self, order_id: &str) -> Result<Option<NextAction>, GatewayError>;
    /// Asks, without charging, whether a payment was ever asked for under
    /// `req.idempotency_key`, and closes the key if not: a request that cannot charge
    /// (an unconfirmed payment) is made under it with other parameters, which the
    /// gateway refuses (`idempotency_error`) when the key was used, and otherwise
    /// stores as the key's only answer. For a payment too late to be taken.
    async fn close_key(&self, req: &ChargeRequest) -> Result<KeyState, GatewayError>;
    /// Refunds `amount` of a succeeded payment (`None`: all of it that is left);
    /// asking twice under one key is one refund. A full refund of a payment
    /// refunded in full already answers `Ok` (nothing is left to give back).
    async fn refund(
        &self,
        charge_id: &str,
        amount: Option<i64>,
        idempotency_key: &str,
    ) -> Result<(), GatewayError>;
    /// Every charge the gateway holds, oldest first.
    async fn charges(&self) -> Result<Vec<ChargeRecord>, GatewayError>;
}
