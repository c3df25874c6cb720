//! The buyer web pages (issue 11) over HTTP: server-rendered HTML that escapes what
//! organizers typed, search on the home page, HTML error pages, and assets under
//! content-hashed names with an immutable cache life. What the pages do in a
//! browser is tested in Chromium (`scripts/browser-test`, `tests/browser/`).

use crate::helpers::*;
use reqwest::Method;
use serde_json::json;

fn html(r: &Res) -> &str {
    assert!(
        r.headers[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{r:?}"
    );
    r.body.as_str().expect("an HTML body")
}

#[tokio::test]
async fn home_lists_and_searches_upcoming_events_and_escapes_their_names() {
    let app = TestApp::spawn().await;
    let venue = app.venue(&[("A", 2, 5)]).await;
    let mut ids = vec![];
    for (name, city) in [
        ("<script>alert(1)</script> Fado", "Lisbon"),
        ("Jazz night", "Porto"),
    ] {
        let ev = app
            .create_event(json!({
                "venue_id": venue, "name": name, "starts_at": "2030-06-01T20:00:00Z",
                "city": city, "category": "concert",
                "tiers": [{"name": "Main", "price": {"amount": 4200, "currency": "EUR"}, "sections": ["A"]}]
            }))
            .await;
        let id = ev["id"].as_str().unwrap().to_owned();
        app.set_status(&id, "on_sale").await;
        ids.push(id);
    }
    let home = app.get("/", None).await;
    assert_eq!(home.status, 200);
    let page = html(&home);
    assert!(page.contains(&format!("/events/{}", ids[0])), "{page}");
    assert!(page.contains(&format!("/events/{}", ids[1])));
    assert!(!page.contains("<script>alert(1)</script>"), "{page}");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt; Fado"));
    assert!(page.contains("From €42.00"));

    let found = app.get("/?q=jazz&city=porto", None).await;
    let page = html(&found);
    assert!(page.contains(&format!("/events/{}", ids[1])), "{page}");
    assert!(!page.contains(&format!("/events/{}", ids[0])));
    // Dates bound it (`to` is the last day, inclusive), and a bad one is said in words.
    let before = html(&app.get("/?to=2030-05-31", None).await).to_owned();
    assert!(!before.contains(&ids[0]));
    assert!(html(&app.get("/?to=2030-06-01", None).await).contains(&ids[0]));
    let bad = app.get("/?from=June", None).await;
    assert_eq!(bad.status, 200);
    assert!(html(&bad).contains("must look like 2030-06-01"));
}

#[tokio::test]
async fn the_event_page_shows_venue_date_and_prices_and_a_missing_one_is_an_html_404() {
    let app = TestApp::spawn().await;
    let sale = app.sale(3, 4, 10, 300, 6).await;
    let r = app.get(&format!("/events/{}", sale.id), None).await;
    assert_eq!(r.status, 200);
    let page = html(&r);
    for want in [
        "Test night",
        "Hall",
        "Sat 1 Jun 2030, 20:00 UTC",
        "id=\"map\"",
        "id=\"picker\"",
        "id=\"ga\"",
    ] {
        assert!(page.contains(want), "{want} missing: {page}");
    }
    assert!(page.contains(&format!("data-event-id=\"{}\"", sale.id)));
    let missing = app.get("/events/evt_nope", None).await;
    assert_eq!(missing.status, 404);
    assert!(html(&missing).contains("not_found"));
    // A draft is not shown to the public.
    let venue = app.venue(&[("A", 1, 1)]).await;
    let draft = app
        .create_event(json!({
            "venue_id": venue, "name": "Secret", "starts_at": "2030-06-01T20:00:00Z",
            "tiers": [{"name": "Main", "price": {"amount": 1, "currency": "EUR"}, "sections": ["A"]}]
        }))
        .await;
    let r = app
        .get(&format!("/events/{}", draft["id"].as_str().unwrap()), None)
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn assets_have_hashed_names_an_immutable_cache_life_and_no_inline_script() {
    let app = TestApp::spawn().await;
    let home = app.get("/", None).await;
    let page = html(&home).to_owned();
    let mut urls: Vec<String> = page
        .split("/assets/")
        .skip(1)
        .map(|s| format!("/assets/{}", &s[..s.find('"').unwrap()]))
        .collect();
    urls.sort();
    assert_eq!(urls.len(), 2, "{page}");
    for u in &urls {
        // name.<10 hex>.ext
        let file = u.trim_start_matches("/assets/");
        let parts: Vec<&str> = file.split('.').collect();
        assert_eq!(parts.len(), 3, "{u}");
        assert!(
            parts[1].len() == 10 && parts[1].chars().all(|c| c.is_ascii_hexdigit()),
            "{u}"
        );
        let r = app.get(u, None).await;
        assert_eq!(r.status, 200, "{u}");
        assert_eq!(
            r.headers[reqwest::header::CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
    }
    // Under default-src 'self': every script is a file, no inline one, no style attribute.
    assert!(!page.contains("<script>") && !page.contains("style=") && !page.contains("onclick"));
    let r = app.get("/assets/app.0000000000.css", None).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.code(), "not_found");
    // The pages are GET only, and say so in the API's shape.
    let r = app.call(Method::POST, "/", None, Some(json!({}))).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.code(), "method_not_allowed");
}

#[tokio::test]
async fn the_queue_page_says_how_the_room_works_and_the_event_page_leads_to_it() {
    let app = TestApp::spawn().await;
    let sale = app.sale(2, 5, 10, 300, 4).await;
    // No room: the event page has no queue banner, the queue page sends back.
    let plain = html(&app.get(&format!("/events/{}", sale.id), None).await).to_owned();
    assert!(plain.contains("data-room=\"off\"") && !plain.contains("id=\"room\""));
    // The waitlist's form is on every event page, shown by its script when sold out.
    assert!(plain.contains("id=\"waitlist\"") && plain.contains("id=\"wl-qty\""));
    let r = app.get(&format!("/events/{}/queue", sale.id), None).await;
    assert_eq!(r.status, 200);
    assert!(html(&r).contains("has no waiting room right now"), "{r:?}");

    let opens = "2030-05-01T09:00:00Z";
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/events/{}", sale.id),
            Some(&app.admin),
            Some(
                json!({"waiting_room": {"enabled": true, "admission_per_minute": 60,
                "session_seconds": 600, "pre_queue_opens_at": opens, "challenge_difficulty": 12}}),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let page = html(&app.get(&format!("/events/{}", sale.id), None).await).to_owned();
    assert!(page.contains("data-room=\"on\""), "{page}");
    assert!(page.contains(&format!("href=\"/events/{}/queue\"", sale.id)));
    assert!(page.contains("10 minutes to choose your seats and pay"));
    let r = app.get(&format!("/events/{}/queue", sale.id), None).await;
    assert_eq!(r.status, 200);
    let q = html(&r);
    assert!(q.contains("data-room=\"on\""), "{q}");
    assert!(q.contains("id=\"position-line\" role=\"status\" aria-live=\"polite\""));
    assert!(
        q.contains("data-seconds=\"600\">10 minutes</strong>"),
        "{q}"
    );
    assert!(
        q.contains("The queue opens at <strong>Wed 1 May 2030, 09:00 UTC</strong>"),
        "{q}"
    );
    assert!(q.contains("/assets/queue.") && !q.contains("<script>"));
    // The proof of work's worker is an asset like the others.
    let js = &q[q.find("/assets/queue.").unwrap()..];
    let js = app.get(&js[..js.find('"').unwrap()], None).await;
    let worker = js
        .body
        .as_str()
        .expect("a script")
        .split("new URL('./")
        .nth(1)
        .map(|s| format!("/assets/{}", &s[..s.find('\'').unwrap()]))
        .expect("queue.js names its worker");
    assert!(
        worker.starts_with("/assets/pow.") && worker.ends_with(".js"),
        "{worker}"
    );
    assert_eq!(app.get(&worker, None).await.status, 200);
    // A missing event is the HTML 404, as for its page.
    let missing = app.get("/events/evt_nope/queue", None).await;
    assert_eq!(missing.status, 404);
    assert!(html(&missing).contains("not_found"));
}
