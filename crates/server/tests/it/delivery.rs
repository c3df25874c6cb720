//! Ticket delivery (issue 13, items 2 and 3): the QR and PDF routes, and a paid
//! order's email received by a real SMTP server on loopback over STARTTLS with
//! credentials, its MIME parsed, its PDF parsed and its QR codes decoded back to
//! the tickets' codes.

use crate::helpers::*;
use boxoffice_tickets_render::decode;
use serde_json::{json, Value};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

/// `smtp_inbox.py` (aiosmtpd) on a free loopback port with a certificate for
/// 127.0.0.1 signed by a throwaway CA, requiring STARTTLS and AUTH.
pub struct SmtpInbox {
    child: std::process::Child,
    pub port: u16,
    pub user: String,
    pub password: String,
    /// The CA the server's certificate chains to (PEM), for `BOXOFFICE_SMTP_CA_FILE`.
    pub ca_file: PathBuf,
    received: mpsc::Receiver<PathBuf>,
    _dir: tempfile::TempDir,
}

/// A Python that has aiosmtpd (Debian's python3-aiosmtpd, which scripts/test
/// installs), if any.
fn python_with_aiosmtpd() -> Option<&'static str> {
    ["/usr/bin/python3", "python3"].into_iter().find(|py| {
        std::process::Command::new(py)
            .args(["-c", "import aiosmtpd"])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

impl SmtpInbox {
    /// `None` (after printing why) when aiosmtpd is missing; under CI that is a
    /// failure instead, since scripts/test installs it.
    pub fn start() -> Option<SmtpInbox> {
        use std::io::{BufRead, BufReader};
        let Some(python) = python_with_aiosmtpd() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "python3-aiosmtpd is missing (scripts/test installs it)"
            );
            eprintln!(
                "SKIPPED: python3-aiosmtpd is not installed (apt-get install python3-aiosmtpd)"
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "boxoffice test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        let write = |name: &str, pem: String| {
            let p = dir.path().join(name);
            std::fs::write(&p, pem).unwrap();
            p
        };
        let ca_file = write("ca.pem", ca.pem());
        let cert_file = write("cert.pem", cert.pem());
        let key_file = write("key.pem", key.serialize_pem());
        let inbox = dir.path().join("inbox");
        std::fs::create_dir(&inbox).unwrap();
        let (user, password) = ("mailer".to_owned(), format!("pw-{}", ulid_like()));
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/smtp_inbox.py");
        let mut child = std::process::Command::new(python)
            // aiosmtpd 1.4 warns of its own deprecations: not ours to read.
            .args(["-W", "ignore"])
            .arg(script)
            .args([&cert_file, &key_file, &inbox])
            .args([&user, &password])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the SMTP server starts");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        let port = first
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the SMTP server said {first:?}"));
        let (tx, received) = mpsc::channel();
        std::thread::spawn(move || {
            for l in out.lines().map_while(Result::ok) {
                if let Some(p) = l.strip_prefix("RECEIVED ") {
                    let _ = tx.send(PathBuf::from(p));
                }
            }
        });
        Some(SmtpInbox {
            child,
            port,
            user,
            password,
            ca_file,
            received,
            _dir: dir,
        })
    }

    /// `BOXOFFICE_SMTP_URL`: STARTTLS required, with the credentials.
    pub fn url(&self) -> String {
        format!(
            "smtp://{}:{}@127.0.0.1:{}?tls=required",
            self.user, self.password, self.port
        )
    }

    /// The next message received (its raw bytes), waiting up to `within`.
    pub fn next(&self, within: Duration) -> Option<Vec<u8>> {
        let path = self.received.recv_timeout(within).ok()?;
        Some(std::fs::read(path).unwrap())
    }
}

impl Drop for SmtpInbox {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A part's MIME type and decoded body.
fn part(p: &mailparse::ParsedMail<'_>) -> (String, Vec<u8>) {
    (p.ctype.mimetype.clone(), p.get_body_raw().unwrap())
}

/// An on-sale event named `name` with one section A of 2 × 5 seats.
async fn event_named(app: &TestApp, name: &str) -> (String, Vec<String>) {
    let venue = app.venue(&[("A", 2, 5)]).await;
    let ev = app
        .create_event(json!({
            "venue_id": venue,
            "name": name,
            "starts_at": "2030-06-01T20:00:00Z",
            "hold_ttl_seconds": 600,
            "max_tickets_per_order": 4,
            "tiers": [{"name": "Main", "price": {"amount": 2500, "currency": "EUR"}, "sections": ["A"]}],
        }))
        .await;
    let id = ev["id"].as_str().unwrap().to_owned();
    app.set_status(&id, "on_sale").await;
    let layout = app.get(&format!("/v1/events/{id}/layout"), None).await;
    let seats = layout.body["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    (id, seats)
}

/// A paid order of `buyer` for `seats`: its JSON.
async fn paid_order(app: &TestApp, buyer: &str, event: &str, seats: &[&String]) -> Value {
    let hold = app.hold_seats(buyer, event, seats).await;
    assert_eq!(hold.status, 201, "{hold:?}");
    let r = app
        .checkout(
            buyer,
            hold.body["hold_id"].as_str().unwrap(),
            &format!("k-{}", ulid_like()),
            "tok_visa",
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    let o = app
        .final_order(buyer, r.body["order_id"].as_str().unwrap())
        .await;
    assert_eq!(o["status"], "paid", "{o}");
    o
}

/// GET `path` as `token`: status, content type, body bytes.
async fn fetch(app: &TestApp, path: &str, token: &str) -> (u16, String, Vec<u8>) {
    let r = app
        .client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (r.status().as_u16(), ct, r.bytes().await.unwrap().to_vec())
}

/// The QR and PDF routes: the buyer's ticket decodes to its code from the SVG and
/// from the PDF, each page names the event, venue, date, seat and buyer; a refund
/// voids the PDF; an unpaid order has none (409); a stranger gets 404.
#[tokio::test]
async fn the_qr_and_pdf_routes_carry_the_ticket_codes() {
    let app = TestApp::spawn().await;
    let (event, seats) = event_named(&app, "Artefact night").await;
    let buyer = app.customer().await;
    let o = paid_order(&app, &buyer, &event, &[&seats[0], &seats[6]]).await;
    let order = o["id"].as_str().unwrap();
    let tickets = o["tickets"].as_array().unwrap();
    assert_eq!(tickets.len(), 2);

    for t in tickets {
        let (status, ct, body) = fetch(
            &app,
            &format!("/v1/tickets/{}/qr.svg", t["id"].as_str().unwrap()),
            &buyer,
        )
        .await;
        assert_eq!((status, ct.as_str()), (200, "image/svg+xml"));
        let svg = String::from_utf8(body).unwrap();
        assert_eq!(decode::decode_svg(&svg).as_deref(), t["code"].as_str());
    }

    let (status, ct, pdf) = fetch(&app, &format!("/v1/orders/{order}/tickets.pdf"), &buyer).await;
    assert_eq!((status, ct.as_str()), (200, "application/pdf"));
    let pages = decode::read_pdf(&pdf).unwrap();
    assert_eq!(pages.len(), 2);
    for (page, (t, place)) in pages.iter().zip(tickets.iter().zip([
        "Section A, row 1, seat 1 (Main)",
        "Section A, row 2, seat 2 (Main)",
    ])) {
        assert_eq!(page.qr.as_deref(), t["code"].as_str(), "{page:?}");
        let text = page.lines.join("\n");
        for want in [
            "Artefact night",
            "Hall",
            "1 June 2030, 20:00 UTC",
            place,
            "buyer@example.com",
        ] {
            assert!(text.contains(want), "{want:?} not on the page: {text}");
        }
        assert!(!text.contains("VOID"), "{text}");
    }

    // Somebody else's: not found, as the order is.
    let stranger = app.customer().await;
    let t0 = tickets[0]["id"].as_str().unwrap();
    for path in [
        format!("/v1/tickets/{t0}/qr.svg"),
        format!("/v1/orders/{order}/tickets.pdf"),
        "/v1/tickets/tkt_01arz3ndektsv4rrffq69g5fav/qr.svg".to_owned(),
        "/v1/tickets/nonsense/qr.svg".to_owned(),
    ] {
        let r = app.get(&path, Some(&stranger)).await;
        assert_eq!((r.status.as_u16(), r.code()), (404, "not_found"), "{path}");
    }
    // The admin may.
    let (status, _, _) = fetch(&app, &format!("/v1/tickets/{t0}/qr.svg"), &app.admin).await;
    assert_eq!(status, 200);

    // Refunded: the PDF says void on every page.
    let r = app
        .post(
            &format!("/v1/orders/{order}/refund"),
            Some(&app.admin),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["status"], "refunded");
    let (status, _, pdf) = fetch(&app, &format!("/v1/orders/{order}/tickets.pdf"), &buyer).await;
    assert_eq!(status, 200);
    let pages = decode::read_pdf(&pdf).unwrap();
    assert_eq!(pages.len(), 2);
    for p in &pages {
        assert!(
            p.lines
                .iter()
                .any(|l| l == "VOID \u{97} this ticket is not valid"),
            "{p:?}"
        );
    }

    // A declined order has no tickets to show.
    let hold = app.hold_seats(&buyer, &event, &[&seats[3]]).await;
    let r = app
        .checkout(
            &buyer,
            hold.body["hold_id"].as_str().unwrap(),
            "k-declined",
            "tok_chargeDeclined",
        )
        .await;
    let declined = r.body["order_id"].as_str().unwrap().to_owned();
    let o = app.final_order(&buyer, &declined).await;
    assert_eq!(o["status"], "failed", "{o}");
    let r = app
        .get(&format!("/v1/orders/{declined}/tickets.pdf"), Some(&buyer))
        .await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (409, "tickets_not_issued"),
        "{r:?}"
    );
}

/// The paid order's email, received by a real SMTP server over STARTTLS with
/// credentials (the relay's certificate checked against `BOXOFFICE_SMTP_CA_FILE`):
/// `multipart/mixed` of a `multipart/alternative` (text, and HTML with the
/// organizer's text escaped) and the PDF, whose pages' QR codes decode to the
/// tickets' codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_orders_email_arrives_over_starttls_with_its_pdf() {
    let Some(inbox) = SmtpInbox::start() else {
        return;
    };
    let backend = Backend::from_env().await;
    let url = inbox.url();
    let ca = inbox.ca_file.to_str().unwrap().to_owned();
    let env = [
        ("BOXOFFICE_SMTP_URL", url.as_str()),
        ("BOXOFFICE_SMTP_CA_FILE", ca.as_str()),
        ("BOXOFFICE_MAIL_FROM", "boxoffice <tickets@example.com>"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let node = Process::boot(dir.path(), &backend, &env);
    let app = TestApp::attach(node.addr, dir, backend).await;

    let (event, seats) = event_named(&app, "Rock <b>& Roll</b>").await;
    let buyer = app.customer().await;
    let o = paid_order(&app, &buyer, &event, &[&seats[1], &seats[2]]).await;
    let order = o["id"].as_str().unwrap();
    let tickets = o["tickets"].as_array().unwrap();

    let raw = inbox
        .next(Duration::from_secs(30))
        .expect("the paid order's email arrives");
    let mail = mailparse::parse_mail(&raw).unwrap();
    use mailparse::MailHeaderMap;
    assert_eq!(
        mail.headers.get_first_value("To").as_deref(),
        Some("buyer@example.com")
    );
    assert!(mail
        .headers
        .get_first_value("Message-ID")
        .is_some_and(|m| m.contains("@boxoffice")));
    assert_eq!(mail.ctype.mimetype, "multipart/mixed");
    assert_eq!(mail.subparts.len(), 2, "{:?}", mail.ctype);
    let alt = &mail.subparts[0];
    assert_eq!(alt.ctype.mimetype, "multipart/alternative");
    let (text_type, text) = part(&alt.subparts[0]);
    let (html_type, html) = part(&alt.subparts[1]);
    assert_eq!(
        (text_type.as_str(), html_type.as_str()),
        ("text/plain", "text/html")
    );
    let (text, html) = (
        String::from_utf8(text).unwrap(),
        String::from_utf8(html).unwrap(),
    );
    assert!(text.contains("Rock <b>& Roll</b>"), "{text}");
    assert!(
        html.contains("Rock &lt;b&gt;&amp; Roll&lt;&#x2f;b&gt;")
            || html.contains("Rock &lt;b&gt;&amp; Roll&lt;/b&gt;"),
        "{html}"
    );
    assert!(!html.contains("<b>&"), "unescaped: {html}");
    for t in tickets {
        let code = t["code"].as_str().unwrap();
        assert!(text.contains(code) && html.contains(code), "{code}");
    }
    assert!(text.contains(order) && html.contains(order));

    let pdf_part = &mail.subparts[1];
    let (pdf_type, pdf) = part(pdf_part);
    assert_eq!(pdf_type, "application/pdf");
    assert_eq!(
        pdf_part.get_content_disposition().disposition,
        mailparse::DispositionType::Attachment
    );
    let pages = decode::read_pdf(&pdf).unwrap();
    let codes: Vec<_> = pages.iter().map(|p| p.qr.clone()).collect();
    let want: Vec<_> = tickets
        .iter()
        .map(|t| t["code"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(codes, want, "the PDF's QR codes are the tickets' codes");
    assert!(pages[0]
        .lines
        .iter()
        .any(|l| l.contains("Section A, row 1, seat 2")));
    // Exactly one email for the order.
    assert!(inbox.next(Duration::from_millis(500)).is_none());
    drop(node);
}
