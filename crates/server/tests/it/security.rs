//! The security defects of issue 10, one test (or a few) each: secrets and keys,
//! roles before bodies, errors that never leak as 500 or plain text, closed metric
//! labels, drafts, slow clients, transport security of the secrets we send, and
//! tokens that can be revoked.

use crate::helpers::*;
use boxoffice_ports::ManualClock;
use boxoffice_server::Application;
use reqwest::Method;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A bound on how long a test waits for something that must happen at once: it
/// fails the test instead of hanging it, it never synchronises anything.
const BOUND: Duration = Duration::from_secs(20);

/// One HTTP/1.1 exchange on a fresh connection, written by hand: the status line's
/// code and the body. The request may announce a body it never sends.
async fn raw(addr: SocketAddr, request: &str) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    tokio::time::timeout(BOUND, read_response(&mut s))
        .await
        .unwrap_or_else(|_| panic!("no answer to {request:?}"))
}

async fn read_response(s: &mut TcpStream) -> (u16, Value) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed before an answer: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status: u16 = head[9..12].parse().unwrap();
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed inside the body");
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = serde_json::from_slice(&buf[head_end..head_end + len]).unwrap_or(Value::Null);
    (status, body)
}

fn is_error_shape(body: &Value, code: &str) -> bool {
    body["error"]["code"] == code && body["error"]["message"].is_string()
}

// --- 1. The token key ---

#[tokio::test]
async fn an_empty_or_short_secret_key_is_refused_at_start() {
    for key in [String::new(), "short".into(), "k".repeat(31)] {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        c.secret_key = Some(key.clone().into());
        let Err(err) = Application::build(Arc::new(c)).await else {
            panic!("started with a {}-byte secret key", key.len());
        };
        let msg = format!("{err:#}");
        assert!(
            msg.contains("BOXOFFICE_SECRET_KEY") && msg.contains("at least 32 bytes"),
            "unclear message: {msg}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.secret_key = Some("k".repeat(32).into());
    Application::build(Arc::new(c))
        .await
        .expect("a 32-byte key is enough");
}

#[tokio::test]
async fn the_generated_key_is_kept_in_a_private_file_not_in_the_database() {
    let mut app = TestApp::spawn_on(Backend::default(), |_| {}).await;
    let file = app.data_dir.path().join("secret.key");
    let key = std::fs::read(&file).expect("the generated key is in <data_dir>/secret.key");
    assert!(key.len() >= 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    for name in ["boxoffice.db", "boxoffice.db-wal"] {
        let Ok(db) = std::fs::read(app.data_dir.path().join(name)) else {
            continue;
        };
        assert!(
            !db.windows(key.len()).any(|w| w == key.as_slice()),
            "the key is in {name}"
        );
    }
    // The same key after a restart: a token issued before still works.
    let admin = app.admin.clone();
    app.restart().await;
    assert_eq!(app.get("/v1/venues", Some(&admin)).await.status, 200);
}
