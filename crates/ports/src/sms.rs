//! Outgoing SMS. Like email, delivery is at least once up to the provider, and the
//! worker records each message sent (by outbox message id) so a redelivery does
//! not send it again; the one window left is between the provider's acceptance
//! and that record (see docs/architecture.md, "Email and SMS").

use async_trait::async_trait;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingSms {
    /// Unique per logical message (the outbox message id).
    pub message_id: String,
    /// E.164 (`+4915112345678`).
    pub to: String,
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    /// Worth another try (the provider was unreachable, busy or failing).
    #[error("sms transport failed: {0}")]
    Transport(#[source] anyhow::Error),
    /// The provider refused this message for good (a bad number, a blocked one).
    #[error("sms rejected: {0}")]
    Rejected(String),
}

#[async_trait]
pub trait SmsSender: Send + Sync + std::fmt::Debug + 'static {
    /// Sends `sms`; `Ok` once the provider accepted it (its id for the message).
    async fn send(&self, sms: &OutgoingSms) -> Result<String, SmsError>;
}

/// Whether `s` is an E.164 number: `+`, then 2 to 15 digits, the first not 0.
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}
