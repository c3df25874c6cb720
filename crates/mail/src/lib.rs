//! Mailers behind the `Mailer` port, both lettre transports:
//! - [`SmtpMailer`]: SMTP to a relay: `smtps://user:pass@host[:port]` (TLS),
//!   `smtp://user:pass@host[:port]?tls=required` (STARTTLS, refused if the server
//!   does not offer it), or `smtp://host[:port]` without credentials (a relay on a
//!   trusted network). Credentials never travel in clear: a URL that would send
//!   them without TLS is refused when the mailer is made, at start;
//! - [`FileMailer`]: each email as an `.eml` file in a directory, the embedded
//!   default, so a fresh machine needs no mail server to see its tickets.
//!
//! A message is plain text alone, or `multipart/alternative` (text and HTML) when
//! it has HTML, inside `multipart/mixed` when it carries attachments (the tickets'
//! PDF). Its `Message-ID` is the outbox message's id: a receiving side that sees
//! it twice (a worker killed between the relay's acceptance and the "sent" mark,
//! see docs/architecture.md) can tell.
//!
//! The relay's certificate is checked against the system's roots, or against one
//! given CA (`BOXOFFICE_SMTP_CA_FILE`: a private relay's own CA, or the tests'
//! self-signed one); never not checked.

use async_trait::async_trait;
use boxoffice_ports::{MailError, Mailer, OutgoingEmail};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, MultiPart, SinglePart};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::fmt;
use std::path::PathBuf;

fn build(from: &str, e: &OutgoingEmail) -> Result<Message, MailError> {
    let bad = |what: &str, err: String| MailError::Rejected(format!("{what}: {err}"));
    let builder = Message::builder()
        .from(
            from.parse()
                .map_err(|x: lettre::address::AddressError| bad("from", x.to_string()))?,
        )
        .to(e
            .to
            .parse()
            .map_err(|x: lettre::address::AddressError| bad("to", x.to_string()))?)
        .subject(&e.subject)
        .message_id(Some(format!("<{}@boxoffice>", e.message_id)));
    let built = match (&e.html, e.attachments.is_empty()) {
        (None, true) => builder.header(ContentType::TEXT_PLAIN).body(e.text.clone()),
        (html, _) => {
            let mut parts = match html {
                Some(h) if e.attachments.is_empty() => {
                    MultiPart::alternative_plain_html(e.text.clone(), h.clone())
                }
                Some(h) => MultiPart::mixed()
                    .multipart(MultiPart::alternative_plain_html(e.text.clone(), h.clone())),
                None => MultiPart::mixed().singlepart(SinglePart::plain(e.text.clone())),
            };
            for a in &e.attachments {
                let kind = ContentType::parse(&a.content_type)
                    .map_err(|x| bad("attachment", x.to_string()))?;
                parts = parts
                    .singlepart(Attachment::new(a.filename.clone()).body(a.bytes.clone(), kind));
            }
            builder.multipart(parts)
        }
    };
    built.map_err(|x| bad("message", x.to_string()))
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
    /// `url` as the module header says; lettre's URL format
    /// (`AsyncSmtpTransport::from_url`). The error never repeats the URL (it may
    /// hold a password).
    ///
    /// `ca_pem`: a CA (PEM) the relay's certificate may chain to, beside the
    /// system's roots.
    pub fn new(url: &str, from: &str, ca_pem: Option<&[u8]>) -> anyhow::Result<Self> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            anyhow::anyhow!("BOXOFFICE_SMTP_URL must start with smtp:// or smtps://")
        })?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let has_credentials = authority.contains('@');
        let query = rest.split_once('?').map_or("", |(_, q)| q);
        let tls_required = query.split('&').any(|kv| kv == "tls=required");
        let tls = match scheme {
            "smtps" => true,
            "smtp" => tls_required,
            _ => anyhow::bail!("BOXOFFICE_SMTP_URL must start with smtp:// or smtps://"),
        };
        if has_credentials && !tls {
            anyhow::bail!(
                "BOXOFFICE_SMTP_URL has credentials but no TLS: they would travel in clear. \
                 Use smtps://user:pass@host (TLS) or smtp://user:pass@host:587?tls=required \
                 (STARTTLS), or a relay that needs no credentials"
            );
        }
        if !tls {
            tracing::warn!(
                "SMTP without TLS: emails (and their tickets) travel in clear to the relay"
            );
        }
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(|e| {
            anyhow::anyhow!("BOXOFFICE_SMTP_URL: {}", redacted(&e.to_string(), url))
        })?;
        if let Some(pem) = ca_pem {
            anyhow::ensure!(
                tls,
                "BOXOFFICE_SMTP_CA_FILE is set but BOXOFFICE_SMTP_URL uses no TLS"
            );
            // The host the certificate must name: the URL's, without user or port.
            let host = authority.rsplit('@').next().unwrap_or_default();
            let host = match host.strip_prefix('[') {
                Some(v6) => v6.split(']').next().unwrap_or_default(),
                None => host.split(':').next().unwrap_or_default(),
            };
            let ca = Certificate::from_pem(pem)
                .map_err(|e| anyhow::anyhow!("BOXOFFICE_SMTP_CA_FILE: {e}"))?;
            let params = TlsParameters::builder(host.to_owned())
                .add_root_certificate(ca)
                .build_rustls()
                .map_err(|e| anyhow::anyhow!("BOXOFFICE_SMTP_CA_FILE: {e}"))?;
            builder = builder.tls(if scheme == "smtps" {
                Tls::Wrapper(params)
            } else {
                Tls::Required(params)
            });
        }
        let transport = builder.build();
        Ok(Self {
            from: from.to_owned(),
            transport,
        })
    }
}

/// `text` without the URL's password, should lettre's error quote it.
fn redacted(text: &str, url: &str) -> String {
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split(['/', '?', '#']).next())
        .and_then(|authority| authority.rsplit_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty());
    match password {
        Some(p) => text.replace(p, "<redacted>"),
        None => text.to_owned(),
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
