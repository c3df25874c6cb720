//! Outgoing email. Delivery is at least once: the message id travels in the
//! `Message-ID` header so a second copy is recognisable.

use async_trait::async_trait;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutgoingEmail {
    /// Unique per logical message (the outbox message id).
    pub message_id: String,
    pub to: String,
    pub subject: String,
    /// The plain-text body: always there (every client reads it).
    pub text: String,
    /// The same content as HTML, already escaped (rendered through a template): with
    /// it the body is `multipart/alternative`.
    pub html: Option<String>,
    /// Files attached (with any, the message is `multipart/mixed`).
    pub attachments: Vec<Attachment>,
}

/// A file an email carries.
#[derive(Clone, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    /// A MIME type, e.g. `application/pdf`.
    pub content_type: String,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Attachment {
    // Its bytes are no use in a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachment")
            .field("filename", &self.filename)
            .field("content_type", &self.content_type)
            .field("bytes", &self.bytes.len())
            .finish()
    }
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
