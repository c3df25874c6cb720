//! Outgoing email. Delivery is at least once: the message id travels in the
//! `Message-ID` header so a second copy is recognisable.

use async_trait::async_trait;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    /// Unique per logical message (the outbox message id).
    pub message_id: String,
    pub to: String,
    pub subject: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail transport failed: {0}")]
    Transport(#[source] anyhow::Error),
    #[error("mail rejected: {0}")]
    Rejected(String),
}

#[async_trait]
pub trait Mailer: Send + Sync + std::fmt::Debug + 'static {
    async fn send(&self, email: &OutgoingEmail) -> Result<(), MailError>;
}
