//! The edge of the API (issue 10): the OpenAPI document and its docs page, security
//! headers, request ids, CORS, TLS, `/metrics` on its own listener, and the bounds
//! on open streams.

use crate::helpers::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::Arc;

fn header<'a>(r: &'a Res, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn the_openapi_document_is_served_and_every_operation_in_it_is_routed() {
    let app = TestApp::spawn().await;
    let r = app.get("/v1/openapi.json", None).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = r.body["paths"].as_object().unwrap();
    assert!(paths.len() > 30, "{}", paths.len());
    // Every documented operation reaches a handler: never the router's fallbacks
    // (405, or 404 "no such route"). The route-by-route check the other way round
    // is the unit test in crates/http/src/openapi.rs.
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            if path.ends_with("/stream") {
                continue; // an open stream never ends; the live tests cover them
            }
            let concrete = path
                .replace("{id}", "01ARZ3NDEKTSV4RRFFQ69G5FAV")
                .replace("{queue_id}", "01ARZ3NDEKTSV4RRFFQ69G5FAV");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = (m == Method::POST || m == Method::PATCH).then(|| json!({}));
            let r = app.call(m, &concrete, Some(&app.admin), body).await;
            assert_ne!(r.status, 405, "{method} {path}: {r:?}");
            assert!(
                !(r.status == 404 && r.body["error"]["message"] == "no such route"),
                "{method} {path} is documented but not routed: {r:?}"
            );
        }
    }
}

#[tokio::test]
async fn the_docs_page_works_offline_under_its_own_content_security_policy() {
    let app = TestApp::spawn().await;
    let page = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script src="/docs/docs.js" defer></script>"#));
    // Nothing from another origin, no inline script or style.
    assert!(!html.contains("://"), "an external reference: {html}");
    assert!(!html.contains("<script>") && !html.contains("style="));
    assert_eq!(csp, boxoffice_http::edge::HTML_CSP);
    assert!(csp.contains("default-src 'self'") && !csp.contains("unsafe-inline"));
    for (path, kind) in [
        ("/docs/docs.js", "text/javascript"),
        ("/docs/docs.css", "text/css"),
    ] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(kind));
        let text = r.text().await.unwrap();
        assert!(
            !text.contains("innerHTML"),
            "{path} must build nodes, not markup"
        );
    }
}

#[tokio::test]
async fn every_response_carries_the_security_headers_and_no_hsts_over_plain_http() {
    let app = TestApp::spawn().await;
    let answers = [
        app.get("/health", None).await,
        app.get("/v1/events", None).await,
        app.get("/v1/no/such/route", None).await,
        app.call(Method::PUT, "/v1/events", None, None).await,
        app.post("/v1/venues", None, json!({})).await,
        app.get("/v1/events/%FF", None).await,
    ];
    for r in &answers {
        assert_eq!(header(r, "x-content-type-options"), "nosniff", "{r:?}");
        assert_eq!(header(r, "referrer-policy"), "no-referrer", "{r:?}");
        assert_eq!(header(r, "x-frame-options"), "DENY", "{r:?}");
        assert_eq!(
            header(r, "content-security-policy"),
            boxoffice_http::edge::API_CSP,
            "{r:?}"
        );
        assert!(r.headers.get("strict-transport-security").is_none());
    }
    assert_eq!(answers[3].status, 405);
    assert_eq!(answers[4].status, 401);
}

#[tokio::test]
async fn a_request_id_is_on_every_response_kept_when_well_formed_and_replaced_when_not() {
    let app = TestApp::spawn().await;
    let send = |id: Option<&'static str>, path: &'static str| {
        let mut req = app.client.get(app.url(path));
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        req.send()
    };
    let made = send(None, "/health").await.unwrap();
    let made = made.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(made.len(), 36, "a UUID: {made}");
    let other = send(None, "/v1/no/such/route").await.unwrap();
    assert_eq!(other.status(), 404);
    assert_ne!(
        other.headers()["x-request-id"],
        made.as_str(),
        "one per request"
    );
    let kept = send(Some("order-flow.42_a-b"), "/v1/events").await.unwrap();
    assert_eq!(kept.headers()["x-request-id"], "order-flow.42_a-b");
    for bad in ["two words", "{\"json\":1}", "x=\"1\" level=error"] {
        let r = send(Some(bad), "/health").await.unwrap();
        let id = r.headers()["x-request-id"].to_str().unwrap();
        assert_ne!(id, bad);
        assert_eq!(id.len(), 36, "replaced by a UUID: {id}");
    }
}

#[tokio::test]
async fn the_request_id_is_in_the_log_lines_of_its_request() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::from_env().await;
    let node = Process::boot(
        dir.path(),
        &backend,
        &[("BOXOFFICE_LOG", "info"), ("BOXOFFICE_DEMO", "false")],
    );
    let app = TestApp::attach(node.addr, tempfile::tempdir().unwrap(), backend).await;
    let r = app
        .client
        .post(app.url("/v1/venues"))
        .bearer_auth(&app.admin)
        .header("x-request-id", "trace-venue-7")
        .json(&json!({"name": "Traced Hall", "sections": [{"name": "A", "rows": 1, "seats_per_row": 2}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let line = node.log_line_with("venue created");
    assert!(line.contains("trace-venue-7"), "{line}");
}

#[tokio::test]
async fn cors_answers_only_the_configured_origins() {
    let closed = TestApp::spawn().await;
    let open = TestApp::spawn_with(|c| {
        c.cors_origins = Some("https://shop.example, http://localhost:3000".into())
    })
    .await;
    let preflight = |app: &TestApp, origin: &str| {
        app.client
            .request(Method::OPTIONS, app.url("/v1/events/x/holds"))
            .header("origin", origin.to_owned())
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let allowed = preflight(&open, "https://shop.example").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://shop.example"
    );
    let methods = allowed.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap();
    assert!(methods.contains("POST"), "{methods}");
    for (app, origin) in [
        (&open, "https://evil.example"),
        (&closed, "https://shop.example"),
    ] {
        let r = preflight(app, origin).await.unwrap();
        assert!(
            r.headers().get("access-control-allow-origin").is_none(),
            "{origin}: {r:?}"
        );
    }
    // A simple request from an allowed origin gets it too, errors included.
    let r = open
        .client
        .get(open.url("/v1/holds/nope"))
        .header("origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
}

#[tokio::test]
async fn a_bad_cors_origin_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.cors_origins = Some("https://shop.example/path".into());
    let err = boxoffice_server::Application::build(Arc::new(c))
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("BOXOFFICE_CORS_ORIGINS"),
        "{err:#}"
    );
}

#[tokio::test]
async fn metrics_move_to_their_own_listener_when_one_is_set() {
    let app =
        TestApp::spawn_with(|c| c.metrics_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    app.get("/v1/events", None).await;
    let public = app.get("/metrics", None).await;
    assert_eq!(public.status, 404, "{public:?}");
    assert_eq!(public.code(), "not_found");
    let addr = app.metrics_addr().expect("a metrics listener");
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("boxoffice_http_request_duration_seconds"),
        "the API's requests are counted there: {text}"
    );
    let other = reqwest::get(format!("http://{addr}/v1/events"))
        .await
        .unwrap();
    assert_eq!(other.status(), 404, "only /metrics there");
    // Without the setting, /metrics stays on the API's listener.
    let plain = TestApp::spawn().await;
    assert_eq!(plain.get("/metrics", None).await.status, 200);
    assert!(plain.metrics_addr().is_none());
}

#[tokio::test]
async fn with_a_certificate_the_api_speaks_https_with_hsts_and_not_plain_http() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls;
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = boxoffice_server::tls::self_signed(certs.path(), &[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.tls_cert = Some(cert.clone());
    c.tls_key = Some(key);
    let running = boxoffice_server::Application::build(Arc::new(c))
        .await
        .unwrap()
        .start();
    let addr = running.address();

    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::pem::PemObject::pem_file_iter(&cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .expect("the handshake succeeds with the configured certificate");
    tls.write_all(b"GET /health HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await.ok();
    let lower = answer.to_ascii_lowercase();
    assert!(lower.starts_with("http/1.1 200"), "{answer}");
    assert!(
        lower.contains("strict-transport-security: max-age=31536000"),
        "{answer}"
    );
    assert!(lower.contains("x-content-type-options: nosniff"));

    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = reqwest::get(format!("http://{addr}/health")).await;
    assert!(plain.is_err(), "{plain:?}");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn open_event_streams_per_ip_are_bounded() {
    let app = TestApp::spawn_with(|c| c.max_streams_per_ip = 2).await;
    let sale = app.sale(1, 4, 10, 600, 4).await;
    let path = format!("/v1/events/{}/stream", sale.id);
    let open = || app.client.get(app.url(&path)).send();
    let first = open().await.unwrap();
    let second = open().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(second.status(), 200);
    let third = open().await.unwrap();
    assert_eq!(third.status(), 429);
    assert!(third.headers().contains_key("retry-after"));
    let body: Value = third.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_streams");
    // The bound is per stream, not per request: other calls still go through.
    assert_eq!(
        app.get(&format!("/v1/events/{}", sale.id), None)
            .await
            .status,
        200
    );
    drop((first, second));
}
