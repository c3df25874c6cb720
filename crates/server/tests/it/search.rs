//! Browsing and search (`GET /v1/events?q=&city=&category=&from=&to=&cursor=`): the
//! full-text index of each store (SQLite FTS5 embedded, PostgreSQL tsvector + GIN
//! distributed), filters, cursor pages, and the cache headers of the answer.

use crate::helpers::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// An on-sale event (a draft if `draft`) with these details; its id.
async fn event(app: &TestApp, venue: &str, name: &str, starts: &str, details: Value) -> String {
    let mut body = json!({
        "venue_id": venue, "name": name, "starts_at": starts,
        "tiers": [{"name": "Main", "price": {"amount": 1000, "currency": "EUR"}, "sections": ["A"]}]
    });
    for (k, v) in details.as_object().unwrap() {
        body[k] = v.clone();
    }
    let ev = app.create_event(body).await;
    let id = ev["id"].as_str().unwrap().to_owned();
    app.set_status(&id, "on_sale").await;
    id
}

fn names(r: &Res) -> Vec<String> {
    r.body["events"]
        .as_array()
        .unwrap_or_else(|| panic!("{r:?}"))
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn search(app: &TestApp, query: &str, token: Option<&str>) -> Vec<String> {
    let r = app.get(&format!("/v1/events?{query}"), token).await;
    assert_eq!(r.status, 200, "{query}: {r:?}");
    names(&r)
}

#[tokio::test]
async fn events_carry_city_category_and_description() {
    let app = TestApp::spawn().await;
    let venue = app.venue(&[("A", 1, 2)]).await;
    let ev = app
        .create_event(json!({
            "venue_id": venue, "name": "Gig", "starts_at": "2030-06-01T20:00:00Z",
            "tiers": [{"name": "Main", "price": {"amount": 1000, "currency": "EUR"}, "sections": ["A"]}],
            "city": " Lyon ", "category": "Music", "description": "Loud guitars."
        }))
        .await;
    assert_eq!(
        (&ev["city"], &ev["category"], &ev["description"]),
        (&json!("Lyon"), &json!("Music"), &json!("Loud guitars."))
    );
    let id = ev["id"].as_str().unwrap();
    let patch = |body: Value| {
        let app = &app;
        async move {
            app.call(
                Method::PATCH,
                &format!("/v1/events/{id}"),
                Some(&app.admin),
                Some(body),
            )
            .await
        }
    };
    let r = patch(json!({"city": "Paris", "description": null})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        (&r.body["city"], &r.body["category"], &r.body["description"]),
        (&json!("Paris"), &json!("Music"), &Value::Null)
    );
    let got = app.get(&format!("/v1/events/{id}"), Some(&app.admin)).await;
    assert_eq!(got.body["city"], "Paris");
    for (body, field) in [
        (json!({"city": ""}), "city"),
        (json!({"category": "x".repeat(101)}), "category"),
        (json!({"description": "bell\u{7}"}), "description"),
    ] {
        let r = patch(body.clone()).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (422, "invalid_request"),
            "{body}"
        );
        assert_eq!(r.body["error"]["field"], field);
    }
    let r = app
        .post(
            "/v1/events",
            Some(&app.admin),
            json!({"venue_id": venue, "name": "Bad", "starts_at": "2030-06-01T20:00:00Z",
                   "tiers": [{"name": "Main", "price": {"amount": 1000, "currency": "EUR"}, "sections": ["A"]}],
                   "city": "   "}),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.body["error"]["field"].clone()),
        (422, json!("city"))
    );
    // A buyer cannot change them.
    let buyer = app.customer().await;
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/events/{id}"),
            Some(&buyer),
            Some(json!({"city": "Nice"})),
        )
        .await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn search_matches_stemmed_words_and_filters_by_city_category_and_dates() {
    let app = TestApp::spawn().await;
    let venue = app.venue(&[("A", 1, 2)]).await;
    event(&app, &venue, "Blue Note Night", "2030-06-01T20:00:00Z",
        json!({"city": "Lyon", "category": "music", "description": "An evening of jazz concerts by the river."})).await;
    event(&app, &venue, "Derby", "2030-07-01T18:00:00Z",
        json!({"city": "Paris", "category": "sport", "description": "The football match of the year."})).await;
    event(
        &app,
        &venue,
        "Strings at Dusk",
        "2030-08-01T19:00:00Z",
        json!({"city": "Paris", "category": "Music", "description": "A chamber concert."}),
    )
    .await;
    // A draft matches nothing for the public.
    let draft = app
        .create_event(json!({
            "venue_id": venue, "name": "Secret concert", "starts_at": "2030-06-15T20:00:00Z",
            "tiers": [{"name": "Main", "price": {"amount": 1000, "currency": "EUR"}, "sections": ["A"]}],
            "city": "Paris"
        }))
        .await;
    assert_eq!(draft["status"], "draft");

    // "concert" finds "concerts" (stemmed), in the description; sorted by date.
    assert_eq!(
        search(&app, "q=concert", None).await,
        ["Blue Note Night", "Strings at Dusk"]
    );
    assert_eq!(
        search(&app, "q=Concerts", None).await,
        ["Blue Note Night", "Strings at Dusk"]
    );
    assert_eq!(
        search(&app, "q=concert", Some(&app.admin)).await,
        ["Blue Note Night", "Secret concert", "Strings at Dusk"]
    );
    // All words must match; the name, city and category are searched too.
    assert_eq!(
        search(&app, "q=jazz%20river", None).await,
        ["Blue Note Night"]
    );
    assert_eq!(
        search(&app, "q=jazz%20football", None).await,
        Vec::<String>::new()
    );
    assert_eq!(search(&app, "q=derby", None).await, ["Derby"]);
    assert_eq!(search(&app, "q=lyon", None).await, ["Blue Note Night"]);
    // Punctuation is not query syntax (FTS5's quotes, stars, parentheses, columns).
    assert_eq!(
        search(&app, "q=%22concert%22%20*%20%28%29%20description%3A", None).await,
        Vec::<String>::new(),
        "every word must match, \"description\" too"
    );
    assert_eq!(
        search(&app, "q=concert%22%20*%20%28%29%3A%5E", None).await,
        ["Blue Note Night", "Strings at Dusk"]
    );
    assert_eq!(
        search(&app, "q=%22%28%29*", None).await,
        Vec::<String>::new()
    );

    assert_eq!(
        search(&app, "city=paris", None).await,
        ["Derby", "Strings at Dusk"]
    );
    assert_eq!(
        search(&app, "category=MUSIC", None).await,
        ["Blue Note Night", "Strings at Dusk"]
    );
    assert_eq!(
        search(&app, "category=music&city=Paris", None).await,
        ["Strings at Dusk"]
    );
    assert_eq!(
        search(&app, "from=2030-06-15&to=2030-07-31", None).await,
        ["Derby"]
    );
    assert_eq!(
        search(&app, "from=2030-07-01T18:00:00Z", None).await,
        ["Derby", "Strings at Dusk"],
        "from is inclusive"
    );
    assert_eq!(
        search(&app, "to=2030-07-01T18:00:00Z", None).await,
        ["Blue Note Night"],
        "to is exclusive"
    );
    assert_eq!(
        search(&app, "q=concert&city=Paris&from=2030-08-01", None).await,
        ["Strings at Dusk"]
    );

    // A change of details is searchable at once.
    let derby = app.get("/v1/events?q=derby", None).await.body["events"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/events/{derby}"),
            Some(&app.admin),
            Some(json!({"city": "Lyon", "description": "Rugby final."})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(search(&app, "q=football", None).await, Vec::<String>::new());
    assert_eq!(search(&app, "q=rugby", None).await, ["Derby"]);
    assert_eq!(
        search(&app, "city=lyon", None).await,
        ["Blue Note Night", "Derby"]
    );
}

/// Pages of 3 over 8 events (some at the same instant): every event once, in
/// (starts_at, id) order, the last page without `next_cursor`; the same with a
/// filter; a cursor that is not ours is 422.
#[tokio::test]
async fn cursor_pages_walk_every_result_once() {
    let app = TestApp::spawn().await;
    let venue = app.venue(&[("A", 1, 2)]).await;
    let mut made = Vec::new();
    for i in 0..8 {
        // Two events at each of four instants, so the id breaks ties.
        let starts = format!("2030-0{}-01T20:00:00Z", 1 + i / 2);
        let city = if i % 2 == 0 { "Oslo" } else { "Bergen" };
        made.push(
            event(
                &app,
                &venue,
                &format!("Show {i}"),
                &starts,
                json!({"city": city}),
            )
            .await,
        );
    }
    let walk = |filter: &'static str| {
        let app = &app;
        async move {
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            for _ in 0..10 {
                let url = match &cursor {
                    Some(c) => format!("/v1/events?limit=3&{filter}&cursor={c}"),
                    None => format!("/v1/events?limit=3&{filter}"),
                };
                let r = app.get(&url, None).await;
                assert_eq!(r.status, 200, "{r:?}");
                let page = r.body["events"].as_array().unwrap();
                assert!(page.len() <= 3);
                for e in page {
                    seen.push((
                        e["starts_at"].as_str().unwrap().to_owned(),
                        e["id"].as_str().unwrap().to_owned(),
                    ));
                }
                match r.body.get("next_cursor") {
                    Some(c) => cursor = Some(c.as_str().unwrap().to_owned()),
                    None => return seen,
                }
            }
            panic!("more pages than events");
        }
    };
    let all = walk("").await;
    assert_eq!(all.len(), 8);
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted, "in (starts_at, id) order");
    let ids: BTreeSet<_> = all.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(
        ids,
        made.iter().cloned().collect::<BTreeSet<_>>(),
        "each once"
    );
    let oslo = walk("city=Oslo").await;
    assert_eq!(oslo.len(), 4);

    // Exactly a page: no next_cursor on it.
    let r = app.get("/v1/events?limit=4&city=Oslo", None).await;
    assert_eq!(r.body["events"].as_array().unwrap().len(), 4);
    assert!(r.body.get("next_cursor").is_none(), "{:?}", r.body);

    for bad in [
        "cursor=zz",
        "cursor=abc",
        "cursor=3a",
        "cursor=31323a6e6f742d616e2d6964",
        "limit=0",
        "limit=101",
        "limit=ten",
        "from=yesterday",
        "to=2030-13-01",
        "sort=name",
    ] {
        let r = app.get(&format!("/v1/events?{bad}"), None).await;
        assert_eq!(
            r.status,
            if bad.starts_with("sort") { 400 } else { 422 },
            "{bad}: {r:?}"
        );
        if r.status == 422 {
            assert_eq!(r.code(), "invalid_request");
            assert_eq!(
                r.body["error"]["field"],
                bad.split('=').next().unwrap(),
                "{bad}"
            );
        }
    }
}

/// The browse answer can be kept by a CDN: public, short-lived, with an ETag that
/// a conditional request revalidates (304) until the catalogue changes.
#[tokio::test]
async fn browse_answers_carry_cache_headers_and_revalidate() {
    let app = TestApp::spawn().await;
    let venue = app.venue(&[("A", 1, 2)]).await;
    let id = event(
        &app,
        &venue,
        "First",
        "2030-06-01T20:00:00Z",
        json!({"city": "Rome"}),
    )
    .await;
    let r = app.get("/v1/events?city=Rome", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["cache-control"], "public, max-age=10");
    let etag = r.headers["etag"].to_str().unwrap().to_owned();

    let again = app
        .client
        .get(app.url("/v1/events?city=Rome"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);

    // A change of the catalogue changes the answer and its ETag.
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/events/{id}"),
            Some(&app.admin),
            Some(json!({"description": "Now with a description."})),
        )
        .await;
    assert_eq!(r.status, 200);
    let changed = app
        .client
        .get(app.url("/v1/events?city=Rome"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    assert_ne!(changed.headers()["etag"].to_str().unwrap(), etag);

    // An admin's answer (drafts included) is private.
    let r = app.get("/v1/events", Some(&app.admin)).await;
    assert_eq!(r.headers["cache-control"], "private, no-cache");
}

/// The public answer to a search is kept (cache-aside) for `catalog_refresh`, and a
/// change made through this node drops it at once: with a minute to live, the
/// answer after a PATCH is already the new one.
#[tokio::test]
async fn a_change_drops_the_cached_search_answers_at_once() {
    let app = TestApp::spawn_with(|c| c.catalog_refresh_ms = 60_000).await;
    let venue = app.venue(&[("A", 1, 2)]).await;
    let id = event(
        &app,
        &venue,
        "Cached",
        "2030-06-01T20:00:00Z",
        json!({"city": "Oslo"}),
    )
    .await;
    assert_eq!(search(&app, "city=Oslo", None).await, ["Cached"]);
    // A customer's search without drafts shares the anonymous answer.
    let customer = app.customer().await;
    assert_eq!(search(&app, "city=Oslo", Some(&customer)).await, ["Cached"]);
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/events/{id}"),
            Some(&app.admin),
            Some(json!({"city": "Bergen"})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(search(&app, "city=Oslo", None).await.is_empty());
    assert_eq!(search(&app, "city=Bergen", None).await, ["Cached"]);
}

/// The answer is served from the node's cache: a change made on another node is
/// not seen here until the answer's time to live has run out (here a minute, so
/// not in this test), or until a change made here drops it.
#[ignore = "distributed: run with BOXOFFICE_TEST_BACKEND=distributed and --include-ignored"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_search_answer_is_served_from_the_node_cache_until_it_lapses() {
    let backend = match Backend::from_env().await {
        b if b.is_distributed() => b,
        _ => Backend::distributed().await,
    };
    let one = TestApp::spawn_on(backend.clone(), |c| c.catalog_refresh_ms = 60_000).await;
    let two = TestApp::spawn_on(backend, |c| c.catalog_refresh_ms = 60_000).await;
    let venue = one.venue(&[("A", 1, 2)]).await;
    let city = format!("Town{}", ulid_like());
    let id = event(
        &one,
        &venue,
        "Shared",
        "2030-06-01T20:00:00Z",
        json!({"city": city}),
    )
    .await;
    let query = format!("city={city}");
    assert_eq!(search(&one, &query, None).await, ["Shared"]);
    let r = two
        .call(
            Method::PATCH,
            &format!("/v1/events/{id}"),
            Some(&two.admin),
            Some(json!({"city": "Elsewhere"})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        search(&two, &query, None).await.is_empty(),
        "node two reads the store"
    );
    assert_eq!(
        search(&one, &query, None).await,
        ["Shared"],
        "node one answers from its cache"
    );
}
