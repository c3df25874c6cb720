//! The role × route matrix (issue 10): every route of the router, called by every
//! role, on resources of the caller's own organization and of another: no IDOR,
//! 404 for what one may not know exists, 403 for what one may see but not do.
//! A route added to the router and not to [`MATRIX`] fails
//! `every_route_of_the_router_is_in_the_matrix`.

use crate::helpers::*;
use reqwest::Method;
use serde_json::{json, Value};

/// The callers, in the order of each row's expectations. `own` is organization
/// A (whose venue, events and orders the requests touch), `other` is B.
pub const ROLES: [&str; 8] = [
    "anonymous",
    "customer",
    "organizer_own",
    "organizer_other",
    "checkin_own",
    "checkin_other",
    "ops",
    "admin",
];

/// Which of organization A's events a path's `{id}` names (events and their
/// sub-resources): the published one, or the draft (which only A's organizers
/// and admins may know).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum On {
    Published,
    Draft,
}

use On::*;

/// (method, route as the router spells it, which event, expected status per role
/// in [`ROLES`] order).
pub const MATRIX: &[(&str, &str, On, [u16; 8])] = &[
    // operations and pages
    (
        "GET",
        "/",
        Published,
        [200, 200, 200, 200, 200, 200, 200, 200],
    ),
    (
        "GET",
        "/docs",
        Published,
        [200, 200, 200, 200, 200, 200, 200, 200],
    ),
    (
        "GET",
        "/docs/docs.js",
        Published,
        [200, 200, 200, 200, 200, 200, 200, 200],
    ),
    (
        "GET",
        "/docs/docs.css",
        Published,
        [200, 200, 200, 200, 200, 200, 200, 200],
    ),
    (
        "GET",
        "/v1/openapi.json",
        Published,
        [200, 200, 200, 200, 200, 200, 200, 200],
    ),
    (
        "GET",
        "/events/{id}",
        Published,
        [200, 200, 200, 200, 200, 200, 200, 200],
    ),
    // the scanner page is a shell: the API it calls decides who may scan
    (
        "GET",
        "/events/{id}/scan",
        Published,
        [200, 200, 200, 200, 200, 200, 200, 200],
    ),
    (
        "GET",
        "/events/{id}/queue",
        Published,
        [200, 200, 200, 200, 200, 200, 200, 200],
    ),
    (
        "GET",
        "/holds/{id}",
        Published,
        [200, 200, 200, 200, 200, 200, 200, 200],
    ),
    (
        "GET",
        "/holds/{id}/checkout",
        Published,
        [200, 200, 200, 200, 200, 200, 200, 200],
    ),
    (
        "GET",
        "/login",
        Published,
        [200, 200, 200, 200, 200, 200, 200, 200],
    ),
    (
        "GET",
        "/register",
        Published,
        [200, 200, 200, 200, 200, 200, 200, 200],
    ),
    (
        "GET",
        "/orders",
        Published,
        [200, 200, 200, 200, 200, 200, 200, 200],
    ),
    (
        "GET",
        "/orders/{id}",
        Published,
        [200, 200, 200, 200, 200, 200, 200, 200],
    ),
    (
        "GET",
        "/assets/{name}",
        Published,
        [404, 404, 404, 404, 404, 404, 404, 404],
    ),
    // waitlist (the published event has places left: buy instead)
    (
        "POST",
        "/v1/events/{id}/waitlist",
        Published,
        [401, 409, 409, 409, 409, 409, 409, 409],
    ),
    (
        "GET",
        "/v1/waitlist/{id}",
        Published,
        [401, 404, 404, 404, 404, 404, 404, 404],
    ),
    (
        "DELETE",
        "/v1/waitlist/{id}",
        Published,
        [401, 404, 404, 404, 404, 404, 404, 404],
    ),
    (
        "GET",
        "/health",
        Published,
        [200, 200, 200, 200, 200, 200, 200, 200],
    ),
    (
        "GET",
        "/ready",
        Published,
        [200, 200, 200, 200, 200, 200, 200, 200],
    ),
    (
        "GET",
        "/metrics",
        Published,
        [200, 200, 200, 200, 200, 200, 200, 200],
    ),
    // identity
    (
        "POST",
        "/v1/auth/register",
        Published,
        [201, 201, 201, 201, 201, 201, 201, 201],
    ),
    (
        "POST",
        "/v1/auth/login",
        Published,
        [200, 200, 200, 200, 200, 200, 200, 200],
    ),
    (
        "POST",
        "/v1/auth/refresh",
        Published,
        [401, 401, 401, 401, 401, 401, 401, 401],
    ),
    (
        "POST",
        "/v1/auth/logout",
        Published,
        [204, 204, 204, 204, 204, 204, 204, 204],
    ),
    (
        "POST",
        "/v1/admin/users/{id}/revoke",
        Published,
        [401, 403, 403, 403, 403, 403, 403, 200],
    ),
    (
        "POST",
        "/v1/auth/password-reset",
        Published,
        [202, 202, 202, 202, 202, 202, 202, 202],
    ),
    (
        "POST",
        "/v1/auth/password-reset/confirm",
        Published,
        [400, 400, 400, 400, 400, 400, 400, 400],
    ),
    (
        "GET",
        "/v1/me",
        Published,
        [401, 200, 200, 200, 200, 200, 200, 200],
    ),
    // organizations
    (
        "POST",
        "/v1/orgs",
        Published,
        [401, 403, 403, 403, 403, 403, 403, 201],
    ),
    (
        "GET",
        "/v1/orgs/{id}",
        Published,
        [401, 404, 200, 404, 200, 404, 200, 200],
    ),
    (
        "POST",
        "/v1/orgs/{id}/invitations",
        Published,
        [401, 404, 201, 404, 403, 404, 403, 201],
    ),
    (
        "GET",
        "/v1/orgs/{id}/invitations",
        Published,
        [401, 404, 200, 404, 403, 404, 403, 200],
    ),
    (
        "DELETE",
        "/v1/orgs/{id}/invitations/{invitation_id}",
        Published,
        [401, 404, 204, 404, 403, 404, 403, 204],
    ),
    (
        "POST",
        "/v1/invitations/accept",
        Published,
        [400, 400, 400, 400, 400, 400, 400, 400],
    ),
    // catalogue
    (
        "GET",
        "/v1/venues",
        Published,
        [401, 403, 200, 200, 403, 403, 200, 200],
    ),
    (
        "POST",
        "/v1/venues",
        Published,
        [401, 403, 201, 201, 403, 403, 403, 201],
    ),
    (
        "GET",
        "/v1/venues/{id}",
        Published,
        [200, 200, 200, 200, 200, 200, 200, 200],
    ),
    (
        "GET",
        "/v1/events",
        Published,
        [200, 200, 200, 200, 200, 200, 200, 200],
    ),
    (
        "POST",
        "/v1/events",
        Published,
        [401, 403, 201, 403, 403, 403, 403, 201],
    ),
    (
        "GET",
        "/v1/events/{id}",
        Published,
        [200, 200, 200, 200, 200, 200, 200, 200],
    ),
    (
        "GET",
        "/v1/events/{id}",
        Draft,
        [404, 404, 200, 404, 404, 404, 404, 200],
    ),
    (
        "PATCH",
        "/v1/events/{id}",
        Published,
        [401, 403, 200, 403, 403, 403, 403, 200],
    ),
    (
        "PATCH",
        "/v1/events/{id}",
        Draft,
        [401, 403, 200, 404, 403, 403, 403, 200],
    ),
    (
        "GET",
        "/v1/events/{id}/layout",
        Published,
        [200, 200, 200, 200, 200, 200, 200, 200],
    ),
    (
        "GET",
        "/v1/events/{id}/layout",
        Draft,
        [404, 404, 200, 404, 404, 404, 404, 200],
    ),
    (
        "GET",
        "/v1/events/{id}/seats",
        Published,
        [200, 200, 200, 200, 200, 200, 200, 200],
    ),
    (
        "GET",
        "/v1/events/{id}/seats",
        Draft,
        [404, 404, 200, 404, 404, 404, 404, 200],
    ),
    (
        "GET",
        "/v1/events/{id}/stream",
        Published,
        [200, 200, 200, 200, 200, 200, 200, 200],
    ),
    (
        "GET",
        "/v1/events/{id}/stream",
        Draft,
        [404, 404, 200, 404, 404, 404, 404, 200],
    ),
    (
        "GET",
        "/v1/events/{id}/staff",
        Published,
        [401, 403, 200, 403, 403, 403, 403, 200],
    ),
    (
        "GET",
        "/v1/events/{id}/staff",
        Draft,
        [401, 404, 200, 404, 404, 404, 404, 200],
    ),
    (
        "POST",
        "/v1/events/{id}/staff",
        Published,
        [401, 403, 200, 403, 403, 403, 403, 200],
    ),
    (
        "POST",
        "/v1/events/{id}/staff",
        Draft,
        [401, 404, 200, 404, 404, 404, 404, 200],
    ),
    // check-in (check-in staff of A are assigned to both events first; see `call`)
    (
        "POST",
        "/v1/checkin",
        Published,
        [401, 403, 200, 403, 200, 403, 403, 200],
    ),
    (
        "POST",
        "/v1/checkin",
        Draft,
        [401, 403, 200, 404, 200, 404, 403, 200],
    ),
    (
        "GET",
        "/v1/events/{id}/checkin/bundle",
        Published,
        [401, 403, 200, 403, 200, 403, 403, 200],
    ),
    (
        "GET",
        "/v1/events/{id}/checkin/bundle",
        Draft,
        [401, 403, 200, 404, 200, 404, 403, 200],
    ),
    (
        "POST",
        "/v1/events/{id}/checkin/sync",
        Published,
        [401, 403, 200, 403, 200, 403, 403, 200],
    ),
    (
        "POST",
        "/v1/events/{id}/checkin/sync",
        Draft,
        [401, 403, 200, 404, 200, 404, 403, 200],
    ),
    (
        "GET",
        "/v1/ticket-keys",
        Published,
        [200, 200, 200, 200, 200, 200, 200, 200],
    ),
    (
        "POST",
        "/v1/admin/ticket-keys",
        Published,
        [401, 403, 403, 403, 403, 403, 403, 201],
    ),
    // the customer's ticket; its event does not rotate codes: 422 for its owner
    (
        "GET",
        "/v1/tickets/{id}/rotating",
        Published,
        [401, 422, 404, 404, 404, 404, 404, 404],
    ),
    // waiting room (off for this event)
    (
        "POST",
        "/v1/events/{id}/queue",
        Published,
        [401, 409, 409, 409, 409, 409, 409, 409],
    ),
    (
        "POST",
        "/v1/events/{id}/queue",
        Draft,
        [401, 404, 409, 404, 404, 404, 404, 409],
    ),
    (
        "GET",
        "/v1/events/{id}/queue/challenge",
        Published,
        [401, 409, 409, 409, 409, 409, 409, 409],
    ),
    (
        "GET",
        "/v1/queue/{queue_id}",
        Published,
        [404, 404, 404, 404, 404, 404, 404, 404],
    ),
    (
        "DELETE",
        "/v1/queue/{queue_id}",
        Published,
        [404, 404, 404, 404, 404, 404, 404, 404],
    ),
    (
        "GET",
        "/v1/queue/{queue_id}/stream",
        Published,
        [404, 404, 404, 404, 404, 404, 404, 404],
    ),
    // holds: the customer's (a fresh one for each caller where the call ends it)
    (
        "POST",
        "/v1/events/{id}/holds",
        Published,
        [401, 201, 201, 201, 201, 201, 201, 201],
    ),
    (
        "POST",
        "/v1/events/{id}/holds",
        Draft,
        [401, 404, 409, 404, 404, 404, 404, 409],
    ),
    (
        "GET",
        "/v1/holds/{id}",
        Published,
        [401, 200, 404, 404, 404, 404, 404, 200],
    ),
    (
        "DELETE",
        "/v1/holds/{id}",
        Published,
        [401, 204, 404, 404, 404, 404, 404, 204],
    ),
    (
        "POST",
        "/v1/holds/{id}/checkout",
        Published,
        [401, 202, 404, 404, 404, 404, 404, 403],
    ),
    // orders: the customer's paid order for organization A's event
    (
        "GET",
        "/v1/orders/{id}",
        Published,
        [401, 200, 200, 404, 404, 404, 404, 200],
    ),
    (
        "POST",
        "/v1/orders/{id}/refund",
        Published,
        [401, 403, 200, 404, 403, 403, 403, 200],
    ),
    // The ticket artefacts: the buyer, admins and the event's scanning staff (its
    // organizers, its assigned check-in staff: `checkin_own` is assigned by the
    // staff row above); 404 to the rest, as the order is.
    (
        "GET",
        "/v1/tickets/{id}/qr.svg",
        Published,
        [401, 200, 200, 404, 200, 404, 404, 200],
    ),
    (
        "GET",
        "/v1/orders/{id}/tickets.pdf",
        Published,
        [401, 200, 200, 404, 200, 404, 404, 200],
    ),
    (
        "GET",
        "/v1/me/orders",
        Published,
        [401, 200, 200, 200, 200, 200, 200, 200],
    ),
    (
        "POST",
        "/v1/payments/stripe/webhook",
        Published,
        [400, 400, 400, 400, 400, 400, 400, 400],
    ),
    // operator views
    (
        "GET",
        "/v1/admin/events/{id}/sales",
        Published,
        [401, 403, 200, 403, 403, 403, 200, 200],
    ),
    (
        "GET",
        "/v1/admin/events/{id}/sales",
        Draft,
        [401, 404, 200, 404, 404, 404, 200, 200],
    ),
    (
        "GET",
        "/v1/audit",
        Published,
        [401, 403, 403, 403, 403, 403, 200, 200],
    ),
    (
        "GET",
        "/v1/admin/events/{id}/engine-audit",
        Published,
        [401, 403, 403, 403, 403, 403, 200, 200],
    ),
    (
        "GET",
        "/v1/admin/events/{id}/engine-audit",
        Draft,
        [401, 404, 403, 404, 404, 404, 200, 200],
    ),
    (
        "GET",
        "/v1/admin/test-gateway/charges",
        Published,
        [401, 403, 403, 403, 403, 403, 403, 200],
    ),
];

/// The routes of the router, read from its source (`.route("…", get(…).post(…))`
/// in `crates/http/src`): (method, route), sorted.
fn router_routes() -> Vec<(String, String)> {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../http/src");
    let mut files = vec![src.clone()];
    let mut out = Vec::new();
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if p.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let Some(q) = rest.find('"') else { break };
            let after = &rest[q + 1..];
            let end = after.find('"').unwrap();
            let route = after[..end].to_owned();
            // The handlers: up to the parenthesis that closes `.route(`.
            let mut depth = 1;
            let mut close = 0;
            for (i, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            close = i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let handlers = &rest[..close];
            for m in ["get", "post", "put", "patch", "delete"] {
                let found = handlers.match_indices(&format!("{m}(")).any(|(i, _)| {
                    i == 0
                        || !handlers.as_bytes()[i - 1].is_ascii_alphanumeric()
                            && handlers.as_bytes()[i - 1] != b'_'
                });
                if found {
                    out.push((m.to_uppercase(), route.clone()));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn every_route_of_the_router_is_in_the_matrix() {
    let routes = router_routes();
    assert!(
        routes.len() >= 40,
        "the router's routes were found: {routes:?}"
    );
    let mut in_matrix: Vec<(String, String)> = MATRIX
        .iter()
        .map(|(m, r, _, _)| (m.to_string(), r.to_string()))
        .collect();
    in_matrix.sort();
    in_matrix.dedup();
    let missing: Vec<_> = routes.iter().filter(|r| !in_matrix.contains(r)).collect();
    let stale: Vec<_> = in_matrix.iter().filter(|r| !routes.contains(r)).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the role matrix: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "matrix rows for routes that do not exist: {stale:?}"
    );
}

/// An account made through an invitation: (token, user id).
pub async fn invited(
    app: &TestApp,
    by: &str,
    org: &str,
    email: &str,
    role: &str,
) -> (String, String) {
    let r = app
        .post(
            &format!("/v1/orgs/{org}/invitations"),
            Some(by),
            json!({"email": email, "role": role}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let token = emailed_token(app, email).await;
    let r = app
        .post(
            "/v1/invitations/accept",
            None,
            json!({"token": token, "password": "password123"}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let access = r.body["token"].as_str().unwrap().to_owned();
    let me = app.get("/v1/me", Some(&access)).await;
    assert_eq!(me.body["role"], role, "{me:?}");
    (access, me.body["user_id"].as_str().unwrap().to_owned())
}

/// The newest token emailed to `to` (an invitation or a reset), once it is sent.
pub async fn emailed_token(app: &TestApp, to: &str) -> String {
    for _ in 0..500 {
        if let Some(t) = tokens_emailed(app, to).pop() {
            return t;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no token was emailed to {to}");
}

/// Every token emailed to `to` so far (oldest first by file time).
pub fn tokens_emailed(app: &TestApp, to: &str) -> Vec<String> {
    let dir = app.data_dir.path().join("mail");
    let mut mails: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| {
                let e = e.ok()?;
                let at = e.metadata().ok()?.modified().ok()?;
                Some((at, std::fs::read_to_string(e.path()).ok()?))
            })
            .collect()
        })
        .unwrap_or_default();
    mails.sort();
    mails
        .into_iter()
        .filter(|(_, m)| m.contains(&format!("To: {to}")))
        .filter_map(|(_, m)| {
            m.lines()
                .map(str::trim)
                .find(|l| {
                    l.len() == 43
                        && l.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                })
                .map(str::to_owned)
        })
        .collect()
}

pub async fn create_org(app: &TestApp, name: &str) -> String {
    let r = app
        .post("/v1/orgs", Some(&app.admin), json!({"name": name}))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    r.body["id"].as_str().unwrap().to_owned()
}

fn venue_body() -> Value {
    json!({"name": "Hall A", "sections": [{"name": "A", "rows": 2, "seats_per_row": 5}]})
}

fn event_body(venue: &str) -> Value {
    json!({
        "venue_id": venue,
        "name": "Org night",
        "starts_at": "2030-06-01T20:00:00Z",
        "hold_ttl_seconds": 600,
        "max_tickets_per_order": 4,
        "tiers": [{"name": "Stalls", "price": {"amount": 5000, "currency": "EUR"}, "sections": ["A"]}],
        "ga_tiers": [{"name": "Floor", "price": {"amount": 2000, "currency": "EUR"}, "capacity": 1000}]
    })
}

/// Organization A with a venue, a published event (GA tier) and a draft, and the
/// callers of [`ROLES`].
pub struct World {
    pub tokens: Vec<Option<String>>,
    pub customer_email: String,
    pub customer_id: String,
    pub checkin_own_id: String,
    pub org_a: String,
    pub venue: String,
    pub published: String,
    pub draft: String,
    pub ga_tier: String,
    pub order: String,
    /// One of `order`'s tickets.
    pub ticket: String,
}

pub async fn world(app: &TestApp) -> World {
    let org_a = create_org(app, "Org A").await;
    let org_b = create_org(app, "Org B").await;
    let n = ulid_like();
    let (org_own, _) = invited(
        app,
        &app.admin,
        &org_a,
        &format!("org-a-{n}@example.com"),
        "organizer",
    )
    .await;
    let (org_other, _) = invited(
        app,
        &app.admin,
        &org_b,
        &format!("org-b-{n}@example.com"),
        "organizer",
    )
    .await;
    let (checkin_own, checkin_own_id) = invited(
        app,
        &org_own,
        &org_a,
        &format!("scan-a-{n}@example.com"),
        "checkin",
    )
    .await;
    let (checkin_other, _) = invited(
        app,
        &org_other,
        &org_b,
        &format!("scan-b-{n}@example.com"),
        "checkin",
    )
    .await;
    let (ops, _) = invited(
        app,
        &app.admin,
        &org_a,
        &format!("ops-{n}@example.com"),
        "ops",
    )
    .await;
    let customer_email = format!("cust-{n}@example.com");
    let r = app
        .post(
            "/v1/auth/register",
            None,
            json!({"email": customer_email, "password": "password123"}),
        )
        .await;
    let customer = r.body["token"].as_str().unwrap().to_owned();
    let customer_id = app.get("/v1/me", Some(&customer)).await.body["user_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let r = app.post("/v1/venues", Some(&org_own), venue_body()).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["org_id"], org_a.as_str());
    let venue = r.body["id"].as_str().unwrap().to_owned();
    let r = app
        .post("/v1/events", Some(&org_own), event_body(&venue))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let published = r.body["id"].as_str().unwrap().to_owned();
    let ga_tier = r.body["ga_tiers"][0]["id"].as_str().unwrap().to_owned();
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/events/{published}"),
            Some(&org_own),
            Some(json!({"status": "on_sale"})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = app
        .post("/v1/events", Some(&org_own), event_body(&venue))
        .await;
    let draft = r.body["id"].as_str().unwrap().to_owned();

    // A paid order of the customer's.
    let hold = app
        .post(
            &format!("/v1/events/{published}/holds"),
            Some(&customer),
            json!({"tier_id": ga_tier, "quantity": 2}),
        )
        .await;
    assert_eq!(hold.status, 201, "{hold:?}");
    let r = app
        .checkout(
            &customer,
            hold.body["hold_id"].as_str().unwrap(),
            "k-world",
            "tok_visa",
        )
        .await;
    let order = r.body["order_id"].as_str().unwrap().to_owned();
    let paid = app.final_order(&customer, &order).await;
    assert_eq!(paid["status"], "paid", "{paid}");
    let ticket = paid["tickets"][0]["id"].as_str().unwrap().to_owned();

    World {
        tokens: vec![
            None,
            Some(customer),
            Some(org_own),
            Some(org_other),
            Some(checkin_own),
            Some(checkin_other),
            Some(ops),
            Some(app.admin.clone()),
        ],
        customer_email,
        customer_id,
        checkin_own_id,
        org_a,
        venue,
        published,
        draft,
        ga_tier,
        order,
        ticket,
    }
}

/// A fresh hold of the customer's on the published event.
async fn fresh_hold(app: &TestApp, w: &World) -> String {
    let r = app
        .post(
            &format!("/v1/events/{}/holds", w.published),
            w.tokens[1].as_deref(),
            json!({"tier_id": w.ga_tier, "quantity": 1}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    r.body["hold_id"].as_str().unwrap().to_owned()
}

/// Makes organization A's check-in staff staff of `event` (harmless twice).
async fn assign_checkin_own(app: &TestApp, w: &World, event: &str) {
    let r = app
        .post(
            &format!("/v1/events/{event}/staff"),
            Some(&app.admin),
            json!({"user_id": w.checkin_own_id}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
}

/// Calls one matrix cell: the status it answered.
async fn call(app: &TestApp, w: &World, row: &(&str, &str, On, [u16; 8]), who: usize) -> u16 {
    let (method, route, on, _) = *row;
    let event = match on {
        Published => &w.published,
        Draft => &w.draft,
    };
    let token = w.tokens[who].as_deref();
    let n = ulid_like();
    let mut headers: Vec<(&str, String)> = Vec::new();
    let (path, body): (String, Option<Value>) = match (method, route) {
        ("POST", "/v1/auth/register") => (
            route.into(),
            Some(json!({"email": format!("reg-{n}@example.com"), "password": "password123"})),
        ),
        ("POST", "/v1/auth/login") => (
            route.into(),
            Some(json!({"email": w.customer_email, "password": "password123"})),
        ),
        ("POST", "/v1/auth/refresh") | ("POST", "/v1/auth/logout") => {
            (route.into(), Some(json!({"refresh_token": "abc.0.def"})))
        }
        ("POST", "/v1/admin/users/{id}/revoke") => {
            (format!("/v1/admin/users/{}/revoke", w.customer_id), None)
        }
        ("POST", "/v1/auth/password-reset") => (
            route.into(),
            Some(json!({"email": format!("nobody-{n}@example.com")})),
        ),
        ("POST", "/v1/auth/password-reset/confirm") | ("POST", "/v1/invitations/accept") => (
            route.into(),
            Some(json!({"token": "not-a-token", "password": "password123"})),
        ),
        ("POST", "/v1/orgs") => (route.into(), Some(json!({"name": format!("Org {n}")}))),
        ("GET", "/v1/orgs/{id}") => (format!("/v1/orgs/{}", w.org_a), None),
        ("POST", "/v1/orgs/{id}/invitations") => (
            format!("/v1/orgs/{}/invitations", w.org_a),
            Some(json!({"email": format!("inv-{n}@example.com"), "role": "checkin"})),
        ),
        ("GET", "/v1/orgs/{id}/invitations") => (format!("/v1/orgs/{}/invitations", w.org_a), None),
        ("DELETE", "/v1/orgs/{id}/invitations/{invitation_id}") => {
            // A fresh open invitation each call, made by the admin.
            let r = app
                .post(
                    &format!("/v1/orgs/{}/invitations", w.org_a),
                    w.tokens[7].as_deref(),
                    json!({"email": format!("rev-{n}@example.com"), "role": "checkin"}),
                )
                .await;
            assert_eq!(r.status, 201, "{r:?}");
            let id = r.body["id"].as_str().unwrap();
            (format!("/v1/orgs/{}/invitations/{id}", w.org_a), None)
        }
        ("POST", "/v1/venues") => (route.into(), Some(venue_body())),
        ("GET", "/v1/venues/{id}") => (format!("/v1/venues/{}", w.venue), None),
        ("POST", "/v1/events") => (route.into(), Some(event_body(&w.venue))),
        ("PATCH", "/v1/events/{id}") => (
            format!("/v1/events/{event}"),
            Some(json!({"description": format!("edited {n}")})),
        ),
        ("POST", "/v1/events/{id}/staff") => (
            format!("/v1/events/{event}/staff"),
            Some(json!({"user_id": w.checkin_own_id})),
        ),
        ("POST", "/v1/events/{id}/queue") => (format!("/v1/events/{event}/queue"), Some(json!({}))),
        ("POST", "/v1/checkin") => {
            assign_checkin_own(app, w, event).await;
            (
                route.into(),
                Some(
                    json!({"code": "NOT-A-TICKET", "gate": "g1", "scan_id": n, "event_id": event}),
                ),
            )
        }
        ("GET", "/v1/events/{id}/checkin/bundle") => {
            assign_checkin_own(app, w, event).await;
            (format!("/v1/events/{event}/checkin/bundle"), None)
        }
        ("POST", "/v1/events/{id}/checkin/sync") => {
            assign_checkin_own(app, w, event).await;
            (
                format!("/v1/events/{event}/checkin/sync"),
                Some(json!({"scans": []})),
            )
        }
        ("GET", "/v1/tickets/{id}/rotating") => {
            let order = app
                .get(&format!("/v1/orders/{}", w.order), Some(&app.admin))
                .await;
            let ticket = order.body["tickets"][0]["id"].as_str().unwrap().to_owned();
            (format!("/v1/tickets/{ticket}/rotating"), None)
        }
        (_, r) if r.starts_with("/v1/queue/{queue_id}") => {
            (r.replace("{queue_id}", "q_not_a_queue"), None)
        }
        ("POST", "/v1/events/{id}/holds") => (
            format!("/v1/events/{event}/holds"),
            Some(json!({"tier_id": w.ga_tier, "quantity": 1})),
        ),
        ("GET", "/v1/holds/{id}") | ("DELETE", "/v1/holds/{id}") => {
            (format!("/v1/holds/{}", fresh_hold(app, w).await), None)
        }
        ("POST", "/v1/holds/{id}/checkout") => {
            headers.push(("Idempotency-Key", format!("k-{n}")));
            (
                format!("/v1/holds/{}/checkout", fresh_hold(app, w).await),
                Some(json!({"email": "buyer@example.com", "payment": {"token": "tok_visa"}})),
            )
        }
        ("GET", "/v1/orders/{id}") => (format!("/v1/orders/{}", w.order), None),
        ("GET", "/v1/orders/{id}/tickets.pdf") => {
            (format!("/v1/orders/{}/tickets.pdf", w.order), None)
        }
        ("GET", "/v1/tickets/{id}/qr.svg") => (format!("/v1/tickets/{}/qr.svg", w.ticket), None),
        ("POST", "/v1/orders/{id}/refund") => (
            format!("/v1/orders/{}/refund", w.order),
            Some(json!({"amount": {"amount": 1, "currency": "EUR"}})),
        ),
        ("POST", "/v1/payments/stripe/webhook") => (route.into(), Some(json!({}))),
        ("POST", "/v1/events/{id}/waitlist") => (
            format!("/v1/events/{event}/waitlist"),
            Some(json!({"quantity": 1, "tier_id": w.ga_tier})),
        ),
        (_, "/v1/waitlist/{id}") => ("/v1/waitlist/wl_01arz3ndektsv4rrffq69g5fav".into(), None),
        ("GET", "/events/{id}") => (format!("/events/{event}"), None),
        ("GET", "/events/{id}/queue") => (format!("/events/{event}/queue"), None),
        ("GET", "/events/{id}/scan") => (format!("/events/{event}/scan"), None),
        ("GET", "/holds/{id}") => (format!("/holds/{}", fresh_hold(app, w).await), None),
        ("GET", "/holds/{id}/checkout") => (
            format!("/holds/{}/checkout", fresh_hold(app, w).await),
            None,
        ),
        ("GET", "/orders/{id}") => (format!("/orders/{}", w.order), None),
        ("GET", "/assets/{name}") => ("/assets/nothing.0123456789.css".into(), None),
        (_, r) if r.starts_with("/v1/events/{id}") || r.starts_with("/v1/admin/events/{id}") => {
            (r.replace("{id}", event), None)
        }
        (_, r) => (r.into(), None),
    };
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = app.client.request(method, app.url(&path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in headers {
        req = req.header(k, v);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    // Streams answer their headers and go on: the status is all this needs.
    let res = req.send().await.expect("request sent");
    res.status().as_u16()
}

#[tokio::test]
async fn every_route_answers_every_role_as_the_matrix_says() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    let mut wrong = Vec::new();
    for row in MATRIX {
        for (who, role) in ROLES.iter().enumerate() {
            let got = call(&app, &w, row, who).await;
            if got != row.3[who] {
                wrong.push(format!(
                    "{} {} ({:?}) as {role}: expected {}, got {got}",
                    row.0, row.1, row.2, row.3[who]
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} cells differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
