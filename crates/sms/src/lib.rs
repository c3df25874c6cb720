//! SMS senders behind the `SmsSender` port:
//! - [`LogSms`]: the default: logs that a message would go (never its body or the
//!   full number), sends nothing;
//! - [`TwilioSms`]: Twilio's Messages REST API,
//!   `POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded
//!   `To`, `From` (or `MessagingServiceSid`) and `Body`, HTTP basic auth with the
//!   account SID and auth token. Its base URL is configurable (a test points it at
//!   [`fake::TwilioFake`]); it must be https, except on loopback.
//!
//! Twilio has no idempotency key: a request whose answer is lost may have sent the
//! message. Such a failure is reported as transient and the worker tries again, so
//! the window for a duplicate is that lost answer (and a kill between acceptance
//! and the worker's mark); see docs/architecture.md, "Email and SMS".

#![forbid(unsafe_code)]

pub mod fake;

use async_trait::async_trait;
use boxoffice_ports::{OutgoingSms, SmsError, SmsSender};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::fmt;
use std::time::Duration;

/// Logs instead of sending: the embedded default, so a fresh machine needs no SMS
/// account.
#[derive(Debug, Default)]
pub struct LogSms;

#[async_trait]
impl SmsSender for LogSms {
    async fn send(&self, sms: &OutgoingSms) -> Result<String, SmsError> {
        // The last digits are enough to tell which buyer; the body holds links to
        // their tickets, so it stays out of the log.
        let tail: String = sms
            .to
            .chars()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        tracing::info!(message = %sms.message_id, to = %format!("…{tail}"), chars = sms.body.chars().count(), "sms not sent: no SMS provider configured (log only)");
        Ok(format!("log-{}", sms.message_id))
    }
}

/// Who the messages come from: a number of the account, or a messaging service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwilioSender {
    From(String),
    MessagingService(String),
}

/// The Messages API of one Twilio account.
pub struct TwilioSms {
    base: String,
    account_sid: String,
    auth_token: SecretString,
    sender: TwilioSender,
    http: reqwest::Client,
}

impl fmt::Debug for TwilioSms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioSms")
            .field("base", &self.base)
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"<redacted>")
            .field("sender", &self.sender)
            .finish()
    }
}

/// Twilio's error body.
#[derive(Debug, Deserialize)]
struct TwilioError {
    code: Option<i64>,
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Created {
    sid: String,
    #[allow(dead_code)] // read for the log: queued, accepted, …
    status: Option<String>,
}

/// Whether `base` is https, or http on loopback (a local fake).
fn base_allowed(base: &str) -> anyhow::Result<()> {
    let url =
        reqwest::Url::parse(base).map_err(|e| anyhow::anyhow!("BOXOFFICE_TWILIO_BASE_URL: {e}"))?;
    let host = url.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => anyhow::bail!(
            "BOXOFFICE_TWILIO_BASE_URL must be https (the auth token travels with every request), \
             or http on loopback for a local fake"
        ),
    }
}

impl TwilioSms {
    /// `base` is `https://api.twilio.com` in production.
    pub fn new(
        base: &str,
        account_sid: &str,
        auth_token: SecretString,
        sender: TwilioSender,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        base_allowed(base)?;
        anyhow::ensure!(
            !account_sid.is_empty() && !auth_token.expose_secret().is_empty(),
            "Twilio needs BOXOFFICE_TWILIO_ACCOUNT_SID and BOXOFFICE_TWILIO_AUTH_TOKEN"
        );
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            account_sid: account_sid.to_owned(),
            auth_token,
            sender,
            http: reqwest::Client::builder().timeout(timeout).build()?,
        })
    }
}

#[async_trait]
impl SmsSender for TwilioSms {
    async fn send(&self, sms: &OutgoingSms) -> Result<String, SmsError> {
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.base, self.account_sid
        );
        let (key, value) = match &self.sender {
            TwilioSender::From(n) => ("From", n.as_str()),
            TwilioSender::MessagingService(s) => ("MessagingServiceSid", s.as_str()),
        };
        let res = self
            .http
            .post(&url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .form(&[
                ("To", sms.to.as_str()),
                (key, value),
                ("Body", sms.body.as_str()),
            ])
            .send()
            .await
            // No answer: it may have been sent. Tried again (see the module header).
            .map_err(|e| SmsError::Transport(e.into()))?;
        let status = res.status();
        if status.is_success() {
            let created: Created = res
                .json()
                .await
                .map_err(|e| SmsError::Transport(e.into()))?;
            return Ok(created.sid);
        }
        let err = res.json::<TwilioError>().await.ok();
        let what = format!(
            "Twilio {} (code {}): {}",
            status.as_u16(),
            err.as_ref().and_then(|e| e.code).unwrap_or_default(),
            err.and_then(|e| e.message).unwrap_or_default()
        );
        if status.as_u16() == 429 || status.is_server_error() || status.as_u16() == 401 {
            // Busy, failing, or credentials being rotated: another try may pass.
            Err(SmsError::Transport(anyhow::anyhow!(what)))
        } else {
            Err(SmsError::Rejected(what))
        }
    }
}

pub use boxoffice_ports::sms::is_e164;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http() {
        assert!(base_allowed("https://api.twilio.com").is_ok());
        assert!(base_allowed("http://127.0.0.1:4010").is_ok());
        assert!(base_allowed("http://localhost:4010").is_ok());
        assert!(base_allowed("http://[::1]:4010").is_ok());
        assert!(base_allowed("http://api.twilio.com").is_err());
        assert!(base_allowed("ftp://127.0.0.1").is_err());
    }

    #[test]
    fn the_token_is_redacted() {
        let t = TwilioSms::new(
            "https://api.twilio.com",
            "AC123",
            SecretString::from("hunter2-token"),
            TwilioSender::From("+15005550006".into()),
            Duration::from_secs(5),
        )
        .unwrap();
        let d = format!("{t:?}");
        assert!(!d.contains("hunter2") && d.contains("AC123"), "{d}");
    }

    #[test]
    fn e164() {
        for ok in ["+4915112345678", "+15005550006", "+12"] {
            assert!(is_e164(ok), "{ok}");
        }
        for bad in [
            "",
            "+",
            "4915112345678",
            "+0123",
            "+1 500 555",
            "+1234567890123456",
            "+49a",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn sends_through_the_fake_and_reads_its_errors() {
        let fake = fake::TwilioFake::start("AC_test", "token-1").await.unwrap();
        let ok = TwilioSms::new(
            &fake.url(),
            "AC_test",
            SecretString::from("token-1"),
            TwilioSender::From("+15005550006".into()),
            Duration::from_secs(5),
        )
        .unwrap();
        let sms = OutgoingSms {
            message_id: "msg_1".into(),
            to: "+4915112345678".into(),
            body: "Your tickets: https://x/orders/1".into(),
        };
        let sid = ok.send(&sms).await.unwrap();
        assert!(sid.starts_with("SM"), "{sid}");
        assert_eq!(fake.count_to("+4915112345678"), 1);
        let m = &fake.messages()[0];
        assert_eq!(
            (m.from.as_str(), m.body.as_str()),
            ("+15005550006", sms.body.as_str())
        );
        // A number Twilio refuses: rejected for good, nothing sent.
        let bad = OutgoingSms {
            to: "12345".into(),
            ..sms.clone()
        };
        assert!(matches!(ok.send(&bad).await, Err(SmsError::Rejected(e)) if e.contains("21211")));
        // Wrong credentials: Twilio's 401 with code 20003.
        let wrong = TwilioSms::new(
            &fake.url(),
            "AC_test",
            SecretString::from("nope"),
            TwilioSender::MessagingService("MG1".into()),
            Duration::from_secs(5),
        )
        .unwrap();
        assert!(
            matches!(wrong.send(&sms).await, Err(SmsError::Transport(e)) if e.to_string().contains("20003"))
        );
        assert_eq!(fake.messages().len(), 1);
        fake.stop().await;
    }
}
