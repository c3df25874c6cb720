//! Mailers behind the `Mailer` port, both lettre transports:
//! - [`SmtpMailer`]: plain SMTP to a relay (`smtp://[user:pass@]host[:port]`), the
//!   production shape (STARTTLS relays are a later addition);
//! - [`FileMailer`]: each email as an `.eml` file in a directory, the embedded
//!   default, so a fresh machine needs no mail server to see its tickets.

use async_trait::async_trait;
use boxoffice_ports::{MailError, Mailer, OutgoingEmail};
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::fmt;
use std::path::PathBuf;

fn build(from: &str, e: &OutgoingEmail) -> Result<Message, MailError> {
    let bad = |what: &str, err: String| MailError::Rejected(format!("{what}: {err}"));
    Message::builder()
        .from(
            from.parse()
                .map_err(|x: lettre::address::AddressError| bad("from", x.to_string()))?,
        )
        .to(e
            .to
            .parse()
            .map_err(|x: lettre::address::AddressError| bad("to", x.to_string()))?)
        .subject(&e.subject)
        .message_id(Some(format!("<{}@boxoffice>", e.message_id)))
        .header(ContentType::TEXT_PLAIN)
        .body(e.text.clone())
        .map_err(|x| bad("message", x.to_string()))
}

pub struct SmtpMailer {
    from: String,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// `url` is `smtp://[user:pass@]host[:port]` (port 25 by default).
    pub fn new(url: &str, from: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("smtp://")
            .ok_or_else(|| anyhow::anyhow!("BOXOFFICE_SMTP_URL must start with smtp://"))?;
        let (creds, hostport) = match rest.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, rest),
        };
        let hostport = hostport.trim_end_matches('/');
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>()?),
            None => (hostport, 25),
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).port(port);
        if let Some(c) = creds {
            let (user, pass) = c.split_once(':').unwrap_or((c, ""));
            b = b.credentials(Credentials::new(user.to_owned(), pass.to_owned()));
        }
        Ok(Self {
            from: from.to_owned(),
            transport: b.build(),
        })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, e: &OutgoingEmail) -> Result<(), MailError> {
        let msg = build(&self.from, e)?;
        match self.transport.send(msg).await {
            Ok(_) => Ok(()),
            Err(err) if err.is_permanent() => Err(MailError::Rejected(err.to_string())),
            Err(err) => Err(MailError::Transport(err.into())),
        }
    }
}

#[derive(Debug)]
pub struct FileMailer {
    from: String,
    dir: PathBuf,
}

impl FileMailer {
    pub fn new(dir: PathBuf, from: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            from: from.to_owned(),
            dir,
        })
    }
}

#[async_trait]
impl Mailer for FileMailer {
    async fn send(&self, e: &OutgoingEmail) -> Result<(), MailError> {
        let msg = build(&self.from, e)?;
        AsyncFileTransport::<Tokio1Executor>::new(&self.dir)
            .send(msg)
            .await
            .map(|_| ())
            .map_err(|err| MailError::Transport(err.into()))
    }
}
