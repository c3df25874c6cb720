//! Register, login, tokens and roles.

use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn register_login_and_roles() {
    let app = TestApp::spawn().await;
    let r = app
        .post(
            "/v1/auth/register",
            None,
            json!({"email": "Ann@Example.com", "password": "password123"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let token = r.body["token"].as_str().unwrap().to_owned();

    // Emails are case-insensitive: the same address cannot register twice.
    let again = app
        .post(
            "/v1/auth/register",
            None,
            json!({"email": "ann@example.COM", "password": "password123"}),
        )
        .await;
    assert_eq!((again.status.as_u16(), again.code()), (409, "email_taken"));

    let login = app.login("ann@example.com", "password123").await;
    assert!(!login.is_empty());
    let wrong = app
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "ann@example.com", "password": "password124"}),
        )
        .await;
    assert_eq!(
        (wrong.status.as_u16(), wrong.code()),
        (401, "invalid_credentials")
    );
    let nobody = app
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "nobody@example.com", "password": "password123"}),
        )
        .await;
    assert_eq!(
        (nobody.status.as_u16(), nobody.code()),
        (401, "invalid_credentials")
    );

    // A customer is not an admin.
    let r = app
        .post(
            "/v1/venues",
            Some(&token),
            json!({"name": "X", "sections": [{"name": "A", "rows": 1, "seats_per_row": 1}]}),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "forbidden"));
    // No token, or a forged one: 401.
    let r = app
        .post(
            "/v1/venues",
            None,
            json!({"name": "X", "sections": [{"name": "A", "rows": 1, "seats_per_row": 1}]}),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "unauthorized"));
    let forged = format!("{}x", &token[..token.len() - 1]);
    let r = app.get("/v1/venues", Some(&forged)).await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "unauthorized"));
    let r = app.get("/v1/venues", Some(&app.admin)).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn registration_rejects_bad_emails_and_short_passwords() {
    let app = TestApp::spawn().await;
    for (email, password) in [
        ("not-an-email", "password123"),
        ("a@b.c", "short"),
        ("", "password123"),
    ] {
        let r = app
            .post(
                "/v1/auth/register",
                None,
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (422, "invalid_request"),
            "{email} {password}"
        );
    }
    let r = app
        .post("/v1/auth/register", None, json!({"email": "x@y.z"}))
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (422, "invalid_request"));
}
