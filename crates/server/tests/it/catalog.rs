//! Venues, events, the layout and the live seat map.

use crate::helpers::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn venue_event_layout_and_seat_map() {
    let app = TestApp::spawn().await;
    let venue = app.venue(&[("A", 2, 3), ("B", 1, 4), ("C", 1, 2)]).await;
    let v = app.get(&format!("/v1/venues/{venue}"), None).await;
    assert_eq!(v.body["seat_count"], 12);

    let ev = app
        .create_event(json!({
            "venue_id": venue, "name": "Quartet", "starts_at": "2031-01-01T19:30:00Z",
            "tiers": [
                {"name": "Front", "price": {"amount": 5000, "currency": "EUR"}, "sections": ["A"]},
                {"name": "Side", "price": {"amount": 3000, "currency": "EUR"}, "sections": ["C"]}
            ],
            "ga_tiers": [{"name": "Standing", "price": {"amount": 1500, "currency": "EUR"}, "capacity": 40}]
        }))
        .await;
    assert_eq!(ev["status"], "draft");
    assert_eq!(ev["hold_ttl_seconds"], 300);
    let id = ev["id"].as_str().unwrap();
    assert!(ev["tiers"][0]["id"].as_str().unwrap().starts_with("tier_"));
    assert!(ev["ga_tiers"][0]["id"]
        .as_str()
        .unwrap()
        .starts_with("tier_"));

    // Drafts are hidden from the public list, shown to admins.
    let public = app.get("/v1/events", None).await;
    assert!(public.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["id"] != id));
    let admin = app.get("/v1/events", Some(&app.admin)).await;
    assert!(admin.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["id"] == id));

    // The layout lists the tiered sections' seats in venue order (B has no tier).
    // A draft is the admin's to see (security.rs: anyone else gets 404).
    let layout = app
        .get(&format!("/v1/events/{id}/layout"), Some(&app.admin))
        .await;
    assert_eq!(layout.status, 200);
    let seats = layout.body["seats"].as_array().unwrap();
    let labels: Vec<String> = seats
        .iter()
        .map(|s| {
            format!(
                "{}{}-{}",
                s["section"].as_str().unwrap(),
                s["row"].as_str().unwrap(),
                s["label"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        labels,
        ["A1-1", "A1-2", "A1-3", "A2-1", "A2-2", "A2-3", "C1-1", "C1-2"]
    );
    assert_eq!(seats[0]["tier_id"], ev["tiers"][0]["id"]);
    assert_eq!(seats[7]["tier_id"], ev["tiers"][1]["id"]);
    assert!(seats[0]["x"].is_number() && seats[0]["y"].is_number());
    assert_eq!(layout.body["ga_tiers"][0]["capacity"], 40);

    // Static and cacheable: an ETag, and 304 when it matches.
    let etag = layout.headers["etag"].to_str().unwrap().to_owned();
    let res = app
        .client
        .get(app.url(&format!("/v1/events/{id}/layout")))
        .bearer_auth(&app.admin)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);

    // The live map: one character per seat, all available, GA remaining.
    let map = app
        .get(&format!("/v1/events/{id}/seats"), Some(&app.admin))
        .await
        .body;
    assert_eq!(map["status"], "AAAAAAAA");
    assert_eq!(map["ga"][0]["tier_id"], ev["ga_tiers"][0]["id"]);
    assert_eq!(map["ga"][0]["remaining"], 40);

    // Holds need the event on sale (a draft is not even there for a customer; a
    // paused event is `not_on_sale`, below).
    let buyer = app.customer().await;
    let seat = seats[0]["id"].as_str().unwrap().to_owned();
    let r = app.hold_seats(&buyer, id, &[&seat]).await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "not_found"));
    app.set_status(id, "on_sale").await;
    let r = app.hold_seats(&buyer, id, &[&seat]).await;
    assert_eq!(r.status, 201, "{r:?}");
    let after = app.seat_map(id).await;
    assert_eq!(after["status"], "HAAAAAAA");
    assert!(after["version"].as_u64() > map["version"].as_u64());

    // Pausing stops sales; ending is final.
    app.set_status(id, "paused").await;
    let r = app
        .hold_seats(&buyer, id, &[&seats[1]["id"].as_str().unwrap().to_owned()])
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (409, "not_on_sale"));
    app.set_status(id, "ended").await;
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/events/{id}"),
            Some(&app.admin),
            Some(json!({"status": "on_sale"})),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (409, "invalid_status_transition")
    );
}

#[tokio::test]
async fn sale_window_is_enforced() {
    let app = TestApp::spawn().await;
    let venue = app.venue(&[("A", 1, 2)]).await;
    let ev = app
        .create_event(json!({
            "venue_id": venue, "name": "Later", "starts_at": "2031-01-01T19:30:00Z",
            "sale_starts_at": "2030-12-01T10:00:00Z",
            "ga_tiers": [{"name": "Floor", "price": {"amount": 1500, "currency": "EUR"}, "capacity": 10}]
        }))
        .await;
    let id = ev["id"].as_str().unwrap();
    app.set_status(id, "on_sale").await;
    let buyer = app.customer().await;
    let r = app
        .post(
            &format!("/v1/events/{id}/holds"),
            Some(&buyer),
            json!({"tier_id": ev["ga_tiers"][0]["id"], "quantity": 1}),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (409, "not_on_sale"));
}

#[tokio::test]
async fn metrics_and_health() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/health", None).await.status, 200);
    assert_eq!(app.get("/ready", None).await.status, 200);
    let sale = app.sale(1, 4, 10, 300, 4).await;
    let buyer = app.customer().await;
    assert_eq!(
        app.hold_seats(&buyer, &sale.id, &[&sale.seats[0]])
            .await
            .status,
        201
    );
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("boxoffice_holds_created_total"), "{text}");
    // Labelled by route template, never by raw path.
    assert!(text.contains(r#"route="/v1/events/{id}/holds""#), "{text}");
    assert!(!text.contains(&sale.id));

    // A method nobody routes is counted as "other", not under its own name.
    let brew = reqwest::Method::from_bytes(b"BREW").unwrap();
    let r = app
        .client
        .request(brew, app.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains(r#"method="other""#), "{text}");
    assert!(!text.contains("BREW"), "{text}");
}

/// The seat map is served from memory per version: an ETag from the version, 304
/// while it holds, a new body once a hold changes it, and the same JSON in every
/// coding the client may ask for, each compressed once (never again by the global
/// compression layer).
#[tokio::test]
async fn seat_map_is_conditional_and_pre_encoded() {
    use std::io::Read;
    let app = TestApp::spawn().await;
    let sale = app.sale(4, 25, 10, 300, 4).await;
    let url = app.url(&format!("/v1/events/{}/seats", sale.id));
    // A client that never decodes for us: another crate of the workspace (the load
    // generator) turns on reqwest's gzip, and a workspace build would then hand this
    // test decoded bodies with the Content-Encoding header gone.
    let raw = reqwest::Client::builder()
        .no_gzip()
        .no_brotli()
        .no_deflate()
        .build()
        .unwrap();
    let get = |accept: Option<&'static str>, if_none_match: Option<String>| {
        let mut req = raw.get(&url);
        if let Some(a) = accept {
            req = req.header("accept-encoding", a);
        }
        if let Some(e) = if_none_match {
            req = req.header("if-none-match", e);
        }
        async move {
            let res = req.send().await.unwrap();
            let headers = res.headers().clone();
            (res.status(), headers, res.bytes().await.unwrap().to_vec())
        }
    };
    let header = |h: &reqwest::header::HeaderMap, name: &str| {
        h.get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };

    let (status, h, identity) = get(None, None).await;
    assert_eq!(status, 200);
    let etag = header(&h, "etag");
    assert!(!etag.is_empty(), "an ETag");
    assert_eq!(header(&h, "content-encoding"), "");
    assert!(header(&h, "vary").contains("accept-encoding"), "{h:?}");
    let map: serde_json::Value = serde_json::from_slice(&identity).unwrap();
    assert_eq!(map["status"].as_str().unwrap().len(), 100);
    assert!(
        etag.contains(&map["version"].to_string()),
        "derived from the version"
    );

    // Unchanged: 304, no body, the same validator.
    for accept in [None, Some("gzip"), Some("br")] {
        let (status, h, body) = get(accept, Some(etag.clone())).await;
        assert_eq!(status, 304, "{accept:?}");
        assert!(body.is_empty());
        assert_eq!(header(&h, "etag"), etag);
    }

    // Every coding decodes to the identity JSON, byte for byte.
    let (status, h, gz) = get(Some("gzip"), None).await;
    assert_eq!(
        (status.as_u16(), header(&h, "content-encoding")),
        (200, "gzip".into())
    );
    assert_eq!(header(&h, "etag"), etag);
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, identity);
    let (status, h, br) = get(Some("gzip, deflate, br"), None).await;
    assert_eq!(
        (status.as_u16(), header(&h, "content-encoding")),
        (200, "br".into())
    );
    let mut unbrotlied = Vec::new();
    brotli::Decompressor::new(&br[..], 4096)
        .read_to_end(&mut unbrotlied)
        .unwrap();
    assert_eq!(unbrotlied, identity);
    assert!(br.len() < identity.len() && gz.len() < identity.len());
    // Identity preferred though gzip is acceptable: sent as is, not compressed on
    // the way out by the global layer.
    let (status, h, plain) = get(Some("identity, gzip;q=0.5"), None).await;
    assert_eq!(
        (status.as_u16(), header(&h, "content-encoding")),
        (200, "".into())
    );
    assert_eq!(plain, identity);

    // A hold changes the version: the old ETag now gets the new map.
    let buyer = app.customer().await;
    let r = app.hold_seats(&buyer, &sale.id, &[&sale.seats[3]]).await;
    assert_eq!(r.status, 201, "{r:?}");
    let (status, h, body) = get(Some("br"), Some(etag.clone())).await;
    assert_eq!(status, 200);
    let new_etag = header(&h, "etag");
    assert_ne!(new_etag, etag);
    let mut json = Vec::new();
    brotli::Decompressor::new(&body[..], 4096)
        .read_to_end(&mut json)
        .unwrap();
    let after: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert!(after["version"].as_u64() > map["version"].as_u64());
    assert_eq!(&after["status"].as_str().unwrap()[..5], "AAAHA");
    let (status, _, identity_after) = get(None, None).await;
    assert_eq!((status.as_u16(), identity_after), (200, json));
    assert_eq!(get(None, Some(new_etag)).await.0, 304);
}

/// The layout (megabytes for a stadium) is compressed once per coding and served
/// pre-encoded: each coding decodes to the identity JSON, the answer varies on
/// Accept-Encoding, a CDN may keep it, and its ETag answers 304 in every coding.
#[tokio::test]
async fn the_layout_is_served_pre_encoded_in_every_coding() {
    use std::io::Read;
    let app = TestApp::spawn().await;
    let sale = app.sale(4, 25, 10, 300, 4).await;
    let url = app.url(&format!("/v1/events/{}/layout", sale.id));
    let raw = reqwest::Client::builder()
        .no_gzip()
        .no_brotli()
        .no_deflate()
        .build()
        .unwrap();
    let get = |accept: &'static str, if_none_match: Option<String>| {
        let mut req = raw.get(&url).header("accept-encoding", accept);
        if let Some(e) = if_none_match {
            req = req.header("if-none-match", e);
        }
        async move {
            let res = req.send().await.unwrap();
            let h = res.headers().clone();
            let get = |n: &str| {
                h.get(n)
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default()
            };
            let meta = (
                res.status().as_u16(),
                get("content-encoding"),
                get("etag"),
                get("vary"),
                get("cache-control"),
            );
            (meta, res.bytes().await.unwrap().to_vec())
        }
    };
    let ((status, coding, etag, vary, cache), identity) = get("identity", None).await;
    assert_eq!((status, coding.as_str()), (200, ""));
    assert!(vary.contains("accept-encoding"), "{vary}");
    assert_eq!(cache, "public, max-age=300");
    let layout: serde_json::Value = serde_json::from_slice(&identity).unwrap();
    assert_eq!(layout["seats"].as_array().unwrap().len(), 100);

    let ((status, coding, gz_etag, _, _), gz) = get("gzip", None).await;
    assert_eq!(
        (status, coding.as_str(), gz_etag.as_str()),
        (200, "gzip", etag.as_str())
    );
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, identity);
    let ((status, coding, _, _, _), br) = get("gzip, br", None).await;
    assert_eq!((status, coding.as_str()), (200, "br"));
    let mut unbrotlied = Vec::new();
    brotli::Decompressor::new(&br[..], 4096)
        .read_to_end(&mut unbrotlied)
        .unwrap();
    assert_eq!(unbrotlied, identity);
    // Compressed once: the second answer is the same bytes.
    assert_eq!(get("gzip", None).await.1, gz);
    for accept in ["identity", "gzip", "br"] {
        let ((status, _, again, _, _), body) = get(accept, Some(etag.clone())).await;
        assert_eq!((status, again.as_str()), (304, etag.as_str()), "{accept}");
        assert!(body.is_empty());
    }
}
