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
    // Each is a signed code: it verifies with the published key alone (as an
    // offline scanner does) and names its ticket and seat (the layout index).
    let keys = app.get("/v1/ticket-keys", None).await;
    assert_eq!(keys.status, 200, "{keys:?}");
    for (page, t) in pages.iter().zip(tickets) {
        use base64::Engine;
        use boxoffice_domain::ticket_code::{ScannedCode, TicketItem};
        let scanned = ScannedCode::parse(page.qr.as_deref().unwrap()).unwrap();
        let key = keys.body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == scanned.payload.kid)
            .expect("the code's key is published");
        let public = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(key["public_key"].as_str().unwrap())
            .unwrap();
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public)
            .verify(&scanned.signed, &scanned.signature)
            .expect("the QR's code verifies with the public key");
        assert_eq!(scanned.payload.ticket.as_str(), t["id"].as_str().unwrap());
        let seat = seats
            .iter()
            .position(|s| t["seat_id"] == s.as_str())
            .expect("a seat of the event");
        assert_eq!(scanned.payload.item, TicketItem::Seat(seat as u32));
    }
    assert!(pages[0]
        .lines
        .iter()
        .any(|l| l.contains("Section A, row 1, seat 2")));
    // Exactly one email for the order.
    assert!(inbox.next(Duration::from_millis(500)).is_none());
    drop(node);
}

/// A gauge of `/metrics` for one consumer (0 when not yet reported).
async fn gauge(app: &TestApp, name: &str, consumer: &str) -> f64 {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let want = format!("{name}{{consumer=\"{consumer}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&want))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The order a ticket email is for, and its Message-ID.
fn order_of_email(raw: &[u8]) -> (String, String) {
    use mailparse::MailHeaderMap;
    let mail = mailparse::parse_mail(raw).unwrap();
    let id = mail.headers.get_first_value("Message-ID").unwrap();
    let text = mail.subparts[0].subparts[0].get_body().unwrap();
    let order = text
        .split_whitespace()
        .find(|w| w.starts_with("ord_"))
        .unwrap()
        .trim_end_matches('.')
        .to_owned();
    (order, id)
}

/// SIGKILL while a batch of paid orders' emails and SMS is going out, then a
/// restart on the same data: every paid order has its email at the SMTP server
/// and every order with a phone its SMS at the Twilio fake. What may repeat is
/// bounded by design: a message the relay or Twilio accepted in the instant before
/// the kill, not yet marked sent, goes again (at most one per job in flight, 4 per
/// consumer); the emails' repeats carry the same Message-ID, so a receiver can
/// drop them, and every order has exactly one distinct Message-ID.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kill_mid_batch_sends_each_email_and_sms_once() {
    const ORDERS: usize = 40;
    let Some(inbox) = SmtpInbox::start() else {
        return;
    };
    let twilio = boxoffice_sms::fake::TwilioFake::start("AC_kill", "kill-token")
        .await
        .unwrap();
    let backend = Backend::from_env().await;
    let (smtp, ca, twilio_url) = (
        inbox.url(),
        inbox.ca_file.to_str().unwrap().to_owned(),
        twilio.url(),
    );
    let env = [
        ("BOXOFFICE_SMTP_URL", smtp.as_str()),
        ("BOXOFFICE_SMTP_CA_FILE", ca.as_str()),
        ("BOXOFFICE_SMS", "twilio"),
        ("BOXOFFICE_TWILIO_BASE_URL", twilio_url.as_str()),
        ("BOXOFFICE_TWILIO_ACCOUNT_SID", "AC_kill"),
        ("BOXOFFICE_TWILIO_AUTH_TOKEN", "kill-token"),
        ("BOXOFFICE_TWILIO_FROM", "+15005550006"),
        ("BOXOFFICE_PUBLIC_URL", "https://tickets.example"),
        ("BOXOFFICE_JOB_LEASE_MS", "2000"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut node = Process::boot(dir.path(), &backend, &env);
    let mut app = TestApp::attach(node.addr, dir, backend.clone()).await;
    let venue = app.venue(&[("A", 4, 10)]).await;
    let ev = app
        .create_event(json!({
            "venue_id": venue,
            "name": "Kill night",
            "starts_at": "2030-06-01T20:00:00Z",
            "hold_ttl_seconds": 600,
            "max_tickets_per_order": 4,
            "tiers": [{"name": "Main", "price": {"amount": 2500, "currency": "EUR"}, "sections": ["A"]}],
        }))
        .await;
    let event = ev["id"].as_str().unwrap().to_owned();
    app.set_status(&event, "on_sale").await;
    let seats: Vec<String> = app
        .get(&format!("/v1/events/{event}/layout"), None)
        .await
        .body["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    let buyer = app.customer().await;
    // Every order checked out (acknowledged) before the kill; half give a phone.
    let mut orders = Vec::new();
    let mut phones = std::collections::BTreeMap::new();
    for (i, seat) in seats.iter().take(ORDERS).enumerate() {
        let hold = app.hold_seats(&buyer, &event, &[seat]).await;
        assert_eq!(hold.status, 201, "{hold:?}");
        let mut body = json!({"email": "buyer@example.com", "payment": {"token": "tok_visa"}});
        if i % 2 == 0 {
            let phone = format!("+491510000{i:04}");
            body["phone"] = json!(phone);
            phones.insert(i, phone);
        }
        let r = app
            .client
            .post(app.url(&format!(
                "/v1/holds/{}/checkout",
                hold.body["hold_id"].as_str().unwrap()
            )))
            .bearer_auth(&buyer)
            .header("Idempotency-Key", format!("kill-{i}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let v: Value = r.json().await.unwrap();
        orders.push(v["order_id"].as_str().unwrap().to_owned());
    }
    // Mid-batch: a quarter of the emails are in.
    let mut received = Vec::new();
    while received.len() < ORDERS / 4 {
        received.push(
            inbox
                .next(Duration::from_secs(60))
                .expect("emails arrive before the kill"),
        );
    }
    node.kill();
    assert!(
        received.len() < ORDERS,
        "the kill came after the batch: it proves nothing"
    );
    let sms_before = twilio.messages().len();

    let node = Process::boot(app.data_dir.path(), &backend, &env);
    app.addr = node.addr;
    for o in &orders {
        let paid = app.final_order(&app.admin, o).await;
        assert_eq!(paid["status"], "paid", "{paid}");
    }
    // Until every order has its email and every phone its SMS …
    let distinct = |received: &[Vec<u8>]| {
        received
            .iter()
            .map(|r| order_of_email(r).0)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    while distinct(&received) < ORDERS {
        received.push(
            inbox
                .next(Duration::from_secs(60))
                .expect("every paid order's email arrives after the restart"),
        );
    }
    eventually("every SMS is sent", || {
        let done = phones.values().all(|p| twilio.count_to(p) > 0);
        async move { done }
    })
    .await;
    // … and nothing is left to send (redeliveries of what the dead node held
    // included: they come back a lease later).
    eventually("the email queue is drained", || async {
        gauge(&app, "boxoffice_queue_depth", "email").await == 0.0
            && gauge(&app, "boxoffice_jobs_in_flight", "email").await == 0.0
    })
    .await;
    received.extend(std::iter::from_fn(|| {
        inbox.next(Duration::from_millis(300))
    }));

    let mut per_order: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for r in &received {
        let (order, id) = order_of_email(r);
        per_order.entry(order).or_default().push(id);
    }
    assert_eq!(
        per_order.keys().cloned().collect::<Vec<_>>(),
        {
            let mut o = orders.clone();
            o.sort();
            o
        },
        "an email for every paid order, none for anything else"
    );
    let mut email_repeats = 0;
    for (order, ids) in &per_order {
        let unique: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), 1, "order {order}: one message, {ids:?}");
        email_repeats += ids.len() - 1;
    }
    let mut sms_repeats = 0;
    for (i, phone) in &phones {
        let n = twilio.count_to(phone);
        assert!(n >= 1, "order {} ({phone}): no SMS", orders[*i]);
        sms_repeats += n - 1;
        let m = twilio
            .messages()
            .into_iter()
            .find(|m| &m.to == phone)
            .unwrap();
        assert_eq!(
            m.body,
            format!(
                "Your 1 ticket for Kill night: https://tickets.example/orders/{}",
                orders[*i]
            )
        );
    }
    assert_eq!(
        twilio.messages().len() - sms_repeats,
        phones.len(),
        "an SMS only for the orders with a phone"
    );
    // The window: at most the jobs in flight at the kill (4 per consumer).
    assert!(email_repeats <= 4, "{email_repeats} emails repeated");
    assert!(sms_repeats <= 4, "{sms_repeats} SMS repeated");
    eprintln!(
        "kill mid-batch delivery: at least {} of {ORDERS} emails and {sms_before} of {} SMS out before the kill; \
         after the restart every order has one (repeated in the kill's window: {email_repeats} emails, {sms_repeats} SMS)",
        ORDERS / 4,
        phones.len()
    );
    drop(node);
    twilio.stop().await;
}

/// A phone that is not E.164 is refused at checkout (422, `field` `phone`).
#[tokio::test]
async fn checkout_refuses_a_phone_that_is_not_e164() {
    let app = TestApp::spawn().await;
    let (event, seats) = event_named(&app, "Phone night").await;
    let buyer = app.customer().await;
    let hold = app.hold_seats(&buyer, &event, &[&seats[0]]).await;
    for bad in [
        "0151 1234567",
        "+0151",
        "+49 151",
        "4915112345678",
        "+1234567890123456",
    ] {
        let r = app
            .client
            .post(app.url(&format!(
                "/v1/holds/{}/checkout",
                hold.body["hold_id"].as_str().unwrap()
            )))
            .bearer_auth(&buyer)
            .header("Idempotency-Key", format!("p-{}", ulid_like()))
            .json(
                &json!({"email": "b@example.com", "payment": {"token": "tok_visa"}, "phone": bad}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{bad}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            (v["error"]["code"].as_str(), v["error"]["field"].as_str()),
            (Some("invalid_request"), Some("phone")),
            "{bad}: {v}"
        );
    }
}
