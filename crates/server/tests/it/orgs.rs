//! Organizations (issue 10): invitations (single use, racing accepts, existing
//! accounts), check-in staff assignment and `may_scan`, password reset by email,
//! and login throttling per account across IPs.

use crate::helpers::*;
use crate::roles::{create_org, emailed_token, tokens_emailed, world};
use boxoffice_domain::EventId;
use boxoffice_ports::ManualClock;
use serde_json::json;
use std::sync::Arc;
use time::OffsetDateTime;

async fn invite(app: &TestApp, org: &str, email: &str, role: &str) -> String {
    let r = app
        .post(
            &format!("/v1/orgs/{org}/invitations"),
            Some(&app.admin),
            json!({"email": email, "role": role}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert!(
        r.body.get("token").is_none(),
        "the token goes by email only"
    );
    emailed_token(app, email).await
}

async fn accept(app: &TestApp, token: &str, password: &str) -> Res {
    app.post(
        "/v1/invitations/accept",
        None,
        json!({"token": token, "password": password}),
    )
    .await
}

/// An invitation works once: a second accept (or a guessed token) is 400
/// `invalid_token`, and the account is the invitation's role in its organization.
#[tokio::test]
async fn an_invitation_is_single_use_and_gives_its_role_and_organization() {
    let app = TestApp::spawn().await;
    let org = create_org(&app, "Org").await;
    let email = format!("new-{}@example.com", ulid_like());
    let token = invite(&app, &org, &email, "organizer").await;
    let r = accept(&app, &token, "password123").await;
    assert_eq!(r.status, 200, "{r:?}");
    let me = app.get("/v1/me", r.body["token"].as_str()).await;
    assert_eq!(me.body["role"], "organizer");
    assert_eq!(me.body["org_id"], org.as_str());
    let again = accept(&app, &token, "password456").await;
    assert_eq!(
        (again.status.as_u16(), again.code()),
        (400, "invalid_token"),
        "{again:?}"
    );
    // The first password stands.
    app.login(&email, "password123").await;
    let junk = accept(&app, "x".repeat(43).as_str(), "password123").await;
    assert_eq!(junk.code(), "invalid_token");
}

/// Two accepts of one token at once: exactly one account, one success.
#[tokio::test]
async fn two_accepts_of_one_invitation_at_once_make_one_account() {
    let app = TestApp::spawn().await;
    let org = create_org(&app, "Org").await;
    for round in 0..5 {
        let email = format!("race-{round}-{}@example.com", ulid_like());
        let token = invite(&app, &org, &email, "checkin").await;
        let (a, b) = tokio::join!(
            accept(&app, &token, "password-one"),
            accept(&app, &token, "password-two")
        );
        let mut statuses = [a.status.as_u16(), b.status.as_u16()];
        statuses.sort();
        assert_eq!(statuses, [200, 400], "{a:?} {b:?}");
        let loser = if a.status == 400 { &a } else { &b };
        assert_eq!(loser.code(), "invalid_token", "{loser:?}");
        // The winner's password is the account's; the loser's is not.
        let (won, lost) = if a.status == 200 {
            ("password-one", "password-two")
        } else {
            ("password-two", "password-one")
        };
        app.login(&email, won).await;
        let r = app
            .post(
                "/v1/auth/login",
                None,
                json!({"email": email, "password": lost}),
            )
            .await;
        assert_eq!(r.status, 401, "{r:?}");
    }
}

/// An organization lists its invitations with their state (never a token); a
/// revoked one cannot be accepted, and revoking it again, or an accepted one,
/// is 409 `invitation_closed`.
#[tokio::test]
async fn a_revoked_invitation_cannot_be_accepted_and_the_list_says_so() {
    let app = TestApp::spawn().await;
    let org = create_org(&app, "Org").await;
    let (kept, dropped) = (
        format!("kept-{}@example.com", ulid_like()),
        format!("dropped-{}@example.com", ulid_like()),
    );
    let kept_token = invite(&app, &org, &kept, "checkin").await;
    let dropped_token = invite(&app, &org, &dropped, "organizer").await;
    let list = app
        .get(&format!("/v1/orgs/{org}/invitations"), Some(&app.admin))
        .await;
    assert_eq!(list.status, 200, "{list:?}");
    let id_of = |list: &Res, email: &str| {
        list.body["invitations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["email"] == email)
            .unwrap_or_else(|| panic!("{email} not listed: {list:?}"))
            .clone()
    };
    assert_eq!(id_of(&list, &dropped)["state"], "open");
    assert!(
        !list.body.to_string().contains(&dropped_token),
        "a token listed"
    );
    let dropped_id = id_of(&list, &dropped)["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/orgs/{org}/invitations/{dropped_id}");
    let r = app.delete(&path, Some(&app.admin)).await;
    assert_eq!(r.status, 204, "{r:?}");
    let r = accept(&app, &dropped_token, "password123").await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (400, "invalid_token"),
        "{r:?}"
    );
    let r = app.delete(&path, Some(&app.admin)).await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (409, "invitation_closed"),
        "{r:?}"
    );
    assert_eq!(accept(&app, &kept_token, "password123").await.status, 200);
    let list = app
        .get(&format!("/v1/orgs/{org}/invitations"), Some(&app.admin))
        .await;
    assert_eq!(id_of(&list, &dropped)["state"], "revoked");
    assert_eq!(id_of(&list, &kept)["state"], "accepted");
    let kept_id = id_of(&list, &kept)["id"].as_str().unwrap().to_owned();
    let r = app
        .delete(
            &format!("/v1/orgs/{org}/invitations/{kept_id}"),
            Some(&app.admin),
        )
        .await;
    assert_eq!(r.code(), "invitation_closed", "{r:?}");
    // Another organization's path does not reach it.
    let other = create_org(&app, "Other").await;
    let r = app
        .delete(
            &format!("/v1/orgs/{other}/invitations/{dropped_id}"),
            Some(&app.admin),
        )
        .await;
    assert_eq!(r.status, 404, "{r:?}");
}

/// A revoke racing an accept: exactly one wins. Either the account exists and the
/// revoke is 409, or the revoke is 204 and no account was made.
#[tokio::test]
async fn a_revoke_racing_an_accept_lets_exactly_one_win() {
    let app = TestApp::spawn().await;
    let org = create_org(&app, "Org").await;
    for round in 0..8 {
        let email = format!("rr-{round}-{}@example.com", ulid_like());
        let token = invite(&app, &org, &email, "checkin").await;
        let list = app
            .get(&format!("/v1/orgs/{org}/invitations"), Some(&app.admin))
            .await;
        let id = list.body["invitations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["email"] == email.as_str())
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let path = format!("/v1/orgs/{org}/invitations/{id}");
        let (revoked, accepted) = tokio::join!(
            app.delete(&path, Some(&app.admin)),
            accept(&app, &token, "password123")
        );
        let login = app
            .post(
                "/v1/auth/login",
                None,
                json!({"email": email, "password": "password123"}),
            )
            .await;
        match (revoked.status.as_u16(), accepted.status.as_u16()) {
            (204, 400) => assert_eq!(login.status, 401, "revoked, yet an account: {login:?}"),
            (409, 200) => assert_eq!(login.status, 200, "{login:?}"),
            other => panic!("both or neither won: {other:?} {revoked:?} {accepted:?}"),
        }
    }
}

/// An invitation to the email of a customer account promotes it only with that
/// account's password: holding the emailed token alone takes over nothing.
#[tokio::test]
async fn an_invitation_to_an_existing_customer_needs_their_password() {
    let app = TestApp::spawn().await;
    let org = create_org(&app, "Org").await;
    let email = format!("cust-{}@example.com", ulid_like());
    let r = app
        .post(
            "/v1/auth/register",
            None,
            json!({"email": email, "password": "customer-pw"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let token = invite(&app, &org, &email, "organizer").await;
    let wrong = accept(&app, &token, "attacker-pw").await;
    assert_eq!(wrong.status, 401, "{wrong:?}");
    // Still open after a wrong password, and the account still the customer's.
    let right = accept(&app, &token, "customer-pw").await;
    assert_eq!(right.status, 200, "{right:?}");
    let me = app.get("/v1/me", right.body["token"].as_str()).await;
    assert_eq!(me.body["role"], "organizer");
    // An admin's email invited as check-in staff: no demotion.
    let token = invite(&app, &org, ADMIN_EMAIL, "checkin").await;
    let r = accept(&app, &token, ADMIN_PASSWORD).await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (409, "account_has_role"),
        "{r:?}"
    );
}

/// Check-in staff scan only the events they are assigned to, of their own
/// organization; staff of another organization cannot be assigned.
#[tokio::test]
async fn check_in_staff_may_scan_only_the_events_they_are_assigned() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    let organizer = w.tokens[2].clone().unwrap();
    let (staff, staff_id) = (w.tokens[4].clone().unwrap(), w.checkin_own_id.clone());
    let other_staff = w.tokens[5].clone().unwrap();
    let other_id = app.get("/v1/me", Some(&other_staff)).await.body["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let event = EventId::try_from(w.published.as_str()).unwrap();
    let who = |t: &str| app.app().authenticate(t).unwrap();
    assert!(!app.app().may_scan(&who(&staff), &event).await.unwrap());
    let r = app
        .post(
            &format!("/v1/events/{}/staff", w.published),
            Some(&organizer),
            json!({"user_id": staff_id}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["staff"], json!([staff_id]));
    assert!(app.app().may_scan(&who(&staff), &event).await.unwrap());
    // Not the draft, to which they are not assigned.
    let draft = EventId::try_from(w.draft.as_str()).unwrap();
    assert!(!app.app().may_scan(&who(&staff), &draft).await.unwrap());
    // Another organization's staff: not assignable, and never a scanner here.
    let r = app
        .post(
            &format!("/v1/events/{}/staff", w.published),
            Some(&organizer),
            json!({"user_id": other_id}),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (422, "invalid_request"),
        "{r:?}"
    );
    assert!(!app
        .app()
        .may_scan(&who(&other_staff), &event)
        .await
        .unwrap());
    // Customers and ops never scan; the event's organizer and admins do.
    for (token, may) in [
        (&w.tokens[1], false),
        (&w.tokens[6], false),
        (&w.tokens[2], true),
        (&w.tokens[7], true),
    ] {
        let t = token.clone().unwrap();
        assert_eq!(app.app().may_scan(&who(&t), &event).await.unwrap(), may);
    }
}

/// A role change reaches the token at the next refresh (the role and the
/// organization are read from the account again).
#[tokio::test]
async fn an_accepted_invitation_shows_in_the_next_refresh_of_a_customer() {
    let app = TestApp::spawn().await;
    let org = create_org(&app, "Org").await;
    let email = format!("cust-{}@example.com", ulid_like());
    let r = app
        .post(
            "/v1/auth/register",
            None,
            json!({"email": email, "password": "customer-pw"}),
        )
        .await;
    let refresh = r.body["refresh_token"].as_str().unwrap().to_owned();
    let token = invite(&app, &org, &email, "organizer").await;
    assert_eq!(accept(&app, &token, "customer-pw").await.status, 200);
    let r = app
        .post("/v1/auth/refresh", None, json!({"refresh_token": refresh}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let me = app.get("/v1/me", r.body["token"].as_str()).await;
    assert_eq!(
        (me.body["role"].as_str(), me.body["org_id"].as_str()),
        (Some("organizer"), Some(org.as_str()))
    );
}

async fn register(app: &TestApp, email: &str, password: &str) -> String {
    let r = app
        .post(
            "/v1/auth/register",
            None,
            json!({"email": email, "password": password}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    r.body["refresh_token"].as_str().unwrap().to_owned()
}

async fn confirm(app: &TestApp, token: &str, password: &str) -> Res {
    app.post(
        "/v1/auth/password-reset/confirm",
        None,
        json!({"token": token, "password": password}),
    )
    .await
}

/// A reset request is 202 whether or not the account exists (and only an
/// existing one is emailed); its token sets the password once, and revokes the
/// account's sessions.
#[tokio::test]
async fn a_password_reset_sets_the_password_once_and_ends_the_sessions() {
    let app = TestApp::spawn().await;
    let email = format!("forgot-{}@example.com", ulid_like());
    let refresh = register(&app, &email, "old-password").await;
    let nobody = format!("nobody-{}@example.com", ulid_like());
    for who in [&email, &nobody] {
        let r = app
            .post("/v1/auth/password-reset", None, json!({"email": who}))
            .await;
        assert_eq!(
            (r.status.as_u16(), &r.body),
            (202, &serde_json::Value::Null),
            "{r:?}"
        );
    }
    let token = emailed_token(&app, &email).await;
    app.app().settle().await;
    assert!(tokens_emailed(&app, &nobody).is_empty());
    let r = confirm(&app, &token, "new-password").await;
    assert_eq!(r.status, 204, "{r:?}");
    app.login(&email, "new-password").await;
    let old = app
        .post(
            "/v1/auth/login",
            None,
            json!({"email": email, "password": "old-password"}),
        )
        .await;
    assert_eq!(old.status, 401);
    // The session from before the reset is revoked.
    let r = app
        .post("/v1/auth/refresh", None, json!({"refresh_token": refresh}))
        .await;
    assert_eq!(r.status, 401, "{r:?}");
    // The token is spent.
    let again = confirm(&app, &token, "third-password").await;
    assert_eq!(
        (again.status.as_u16(), again.code()),
        (400, "invalid_token"),
        "{again:?}"
    );
    app.login(&email, "new-password").await;
}

/// A reset token expires after an hour (manual clock).
#[tokio::test]
async fn a_password_reset_token_expires_after_an_hour() {
    let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
    let app = TestApp::spawn_with_clock(|_| {}, clock.clone()).await;
    let email = format!("late-{}@example.com", ulid_like());
    register(&app, &email, "old-password").await;
    let r = app
        .post("/v1/auth/password-reset", None, json!({"email": email}))
        .await;
    assert_eq!(r.status, 202);
    let token = emailed_token(&app, &email).await;
    clock.advance(time::Duration::minutes(61));
    let r = confirm(&app, &token, "new-password").await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (400, "invalid_token"),
        "{r:?}"
    );
    app.login(&email, "old-password").await;
}

/// Two confirms of one reset token at once: one wins, the other is refused.
#[tokio::test]
async fn two_confirms_of_one_reset_token_at_once_change_the_password_once() {
    let app = TestApp::spawn().await;
    let email = format!("race-{}@example.com", ulid_like());
    register(&app, &email, "old-password").await;
    app.post("/v1/auth/password-reset", None, json!({"email": email}))
        .await;
    let token = emailed_token(&app, &email).await;
    let (a, b) = tokio::join!(
        confirm(&app, &token, "password-one"),
        confirm(&app, &token, "password-two")
    );
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort();
    assert_eq!(statuses, [204, 400], "{a:?} {b:?}");
    let won = if a.status == 204 {
        "password-one"
    } else {
        "password-two"
    };
    app.login(&email, won).await;
}

fn one_account_limit(c: &mut boxoffice_server::Config) {
    c.rate_limit_login_account_per_minute = 60;
    c.rate_limit_login_account_burst = 3;
}

/// Many IPs guessing one account's password: the per-IP limit never trips (one
/// try each), the per-account one does: 429 `rate_limited`. Another account is
/// not affected.
#[tokio::test]
async fn many_ips_hammering_one_account_are_rate_limited() {
    let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
    let app = TestApp::spawn_with_clock(one_account_limit, clock).await;
    let email = format!("target-{}@example.com", ulid_like());
    register(&app, &email, "the-password").await;
    let mut answers = Vec::new();
    for i in 0..6u8 {
        let client = reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, 10 + i]))
            .build()
            .unwrap();
        let r = client
            .post(app.url("/v1/auth/login"))
            .json(&json!({"email": email.to_uppercase(), "password": format!("guess-{i}")}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: serde_json::Value = r.json().await.unwrap();
        answers.push((
            status,
            body["error"]["code"].as_str().unwrap_or("").to_owned(),
        ));
    }
    let codes: Vec<_> = answers.iter().map(|(s, c)| (*s, c.as_str())).collect();
    assert_eq!(
        codes,
        [
            (401, "invalid_credentials"),
            (401, "invalid_credentials"),
            (401, "invalid_credentials"),
            (429, "rate_limited"),
            (429, "rate_limited"),
            (429, "rate_limited"),
        ]
    );
    // Another account, from the same IPs: logs in.
    let other = format!("other-{}@example.com", ulid_like());
    register(&app, &other, "the-password").await;
    app.login(&other, "the-password").await;
}
