//! A fake of Twilio's Messages API for tests: `POST
//! /2010-04-01/Accounts/{AccountSid}/Messages.json` with HTTP basic auth and the
//! form fields `To`, `From` or `MessagingServiceSid`, and `Body`; 201 with the
//! message resource (`sid`, `status: "queued"`, …), or Twilio's error shape
//! `{"code", "message", "more_info", "status"}` (20003 wrong credentials, 21211 a
//! `To` that is not E.164, 21602 no body, 21603 no sender). It keeps every message
//! it accepted, so a test counts them per `To` and body. It sends nothing.

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine;
use parking_lot::Mutex;
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// A message the fake accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeSms {
    pub sid: String,
    pub to: String,
    /// `From`, or the messaging service's SID.
    pub from: String,
    pub body: String,
}

#[derive(Debug)]
struct Inner {
    account_sid: String,
    auth_token: String,
    messages: Mutex<Vec<FakeSms>>,
}

#[derive(Debug)]
pub struct TwilioFake {
    addr: SocketAddr,
    inner: Arc<Inner>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl TwilioFake {
    /// Serves on a free loopback port for this account and token.
    pub async fn start(account_sid: &str, auth_token: &str) -> std::io::Result<Self> {
        let inner = Arc::new(Inner {
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
            messages: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/2010-04-01/Accounts/{account}/Messages.json", post(create))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(s.cancelled_owned())
                .await;
        });
        Ok(Self {
            addr,
            inner,
            stop,
            task,
        })
    }

    /// Its base URL (`BOXOFFICE_TWILIO_BASE_URL`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every message accepted, in order.
    pub fn messages(&self) -> Vec<FakeSms> {
        self.inner.messages.lock().clone()
    }

    /// How many messages went to `to`.
    pub fn count_to(&self, to: &str) -> usize {
        self.inner
            .messages
            .lock()
            .iter()
            .filter(|m| m.to == to)
            .count()
    }

    /// Messages per (`To`, body).
    pub fn counts(&self) -> HashMap<(String, String), usize> {
        let mut out = HashMap::new();
        for m in self.inner.messages.lock().iter() {
            *out.entry((m.to.clone(), m.body.clone())).or_default() += 1;
        }
        out
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

fn error(status: StatusCode, code: u32, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status.as_u16(),
        })),
    )
        .into_response()
}

fn authorised(inner: &Inner, account: &str, headers: &HeaderMap) -> bool {
    let Some(basic) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(basic) else {
        return false;
    };
    let want = format!("{}:{}", inner.account_sid, inner.auth_token);
    account == inner.account_sid && decoded == want.as_bytes()
}

async fn create(
    State(inner): State<Arc<Inner>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !authorised(&inner, &account, &headers) {
        return error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let to = form.get("To").cloned().unwrap_or_default();
    if !crate::is_e164(&to) {
        return error(
            StatusCode::BAD_REQUEST,
            21211,
            &format!("The 'To' number {to} is not a valid phone number."),
        );
    }
    let Some(from) = form
        .get("From")
        .or_else(|| form.get("MessagingServiceSid"))
        .cloned()
    else {
        return error(
            StatusCode::BAD_REQUEST,
            21603,
            "A 'From' or 'MessagingServiceSid' parameter is required to send a message",
        );
    };
    let body = form.get("Body").cloned().unwrap_or_default();
    if body.is_empty() {
        return error(StatusCode::BAD_REQUEST, 21602, "Message body is required.");
    }
    let sid = format!("SM{}", ulid::Ulid::new().to_string().to_lowercase());
    inner.messages.lock().push(FakeSms {
        sid: sid.clone(),
        to: to.clone(),
        from: from.clone(),
        body: body.clone(),
    });
    (
        StatusCode::CREATED,
        axum::Json(json!({
            "sid": sid,
            "account_sid": account,
            "to": to,
            "from": from,
            "body": body,
            "status": "queued",
            "num_segments": "1",
            "direction": "outbound-api",
            "uri": format!("/2010-04-01/Accounts/{account}/Messages/{sid}.json"),
        })),
    )
        .into_response()
}
