//! The SMTP mailer against a real SMTP server (mailin-embedded) on loopback, and the
//! file mailer on a temporary directory.

use boxoffice_mail::{FileMailer, SmtpMailer};
use boxoffice_ports::{Mailer, OutgoingEmail};
use mailin_embedded::{response, Handler, Response, Server, SslConfig};
use std::sync::{Arc, Mutex};

/// What the server received: recipients and the raw message.
type Received = Arc<Mutex<Vec<(Vec<String>, String)>>>;

#[derive(Clone, Default)]
struct Inbox {
    current: Vec<u8>,
    rcpt: Vec<String>,
    received: Received,
}

impl Handler for Inbox {
    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.rcpt = to.to_vec();
        self.current.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let text = String::from_utf8_lossy(&self.current).into_owned();
        self.received
            .lock()
            .unwrap()
            .push((self.rcpt.clone(), text));
        response::OK
    }
}

fn email() -> OutgoingEmail {
    OutgoingEmail {
        message_id: "msg_01arz3ndektsv4rrffq69g5fav".into(),
        to: "ann@example.com".into(),
        subject: "Your tickets for Demo Night".into(),
        text: "Order ord_1\n  CODE123  section A, row 1, seat 1\n".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn smtp_delivers_to_a_real_server() {
    let inbox = Inbox::default();
    let received = inbox.received.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut server = Server::new(inbox);
    server
        .with_name("inbox.test")
        .with_ssl(SslConfig::None)
        .unwrap()
        .with_tcp_listener(listener);
    std::thread::spawn(move || {
        let _ = server.serve();
    });

    let mailer = SmtpMailer::new(
        &format!("smtp://127.0.0.1:{port}"),
        "boxoffice <tickets@example.com>",
        None,
    )
    .unwrap();
    mailer.send(&email()).await.unwrap();

    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let (rcpt, text) = &got[0];
    assert_eq!(rcpt, &["ann@example.com".to_owned()]);
    assert!(
        text.contains("Subject: Your tickets for Demo Night"),
        "{text}"
    );
    assert!(
        text.contains("Message-ID: <msg_01arz3ndektsv4rrffq69g5fav@boxoffice>"),
        "{text}"
    );
    assert!(text.contains("CODE123  section A, row 1, seat 1"), "{text}");
}

#[tokio::test]
async fn smtp_to_nobody_listening_is_a_transport_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mailer =
        SmtpMailer::new(&format!("smtp://127.0.0.1:{port}"), "t@example.com", None).unwrap();
    assert!(matches!(
        mailer.send(&email()).await,
        Err(boxoffice_ports::MailError::Transport(_))
    ));
    assert!(SmtpMailer::new("http://x", "t@example.com", None).is_err());
}

#[tokio::test]
async fn credentials_only_over_tls() {
    for url in [
        "smtp://user:hunter2@mail.example:587",
        "smtp://user:hunter2@mail.example:587?tls=opportunistic",
        "smtp://user@mail.example",
    ] {
        let e = SmtpMailer::new(url, "t@example.com", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no TLS"), "{url}: {e}");
        assert!(!e.contains("hunter2"), "{e}");
    }
    for url in [
        "smtps://user:hunter2@mail.example",
        "smtp://user:hunter2@mail.example:587?tls=required",
        "smtp://relay.internal:25",
    ] {
        SmtpMailer::new(url, "t@example.com", None).unwrap_or_else(|e| panic!("{url}: {e}"));
    }
}

#[tokio::test]
async fn files_for_the_embedded_mode() {
    let dir = std::env::temp_dir().join(format!("boxoffice-mail-{}", std::process::id()));
    let mailer = FileMailer::new(dir.clone(), "t@example.com").unwrap();
    mailer.send(&email()).await.unwrap();
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
    assert!(text.contains("To: ann@example.com"));
    // An address no relay would take is rejected before sending, not retried.
    let mut bad = email();
    bad.to = "not an address".into();
    assert!(matches!(
        mailer.send(&bad).await,
        Err(boxoffice_ports::MailError::Rejected(_))
    ));
    std::fs::remove_dir_all(dir).unwrap();
}
