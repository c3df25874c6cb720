//! A first start that fails must not lock the admin out, and an operator who lost
//! the admin password gets back in with `boxoffice admin reset-password`, on a
//! stopped server's store or a running one's.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::json;

/// The password printed on a line `… / <password>` or `…: <password>`.
fn password_in(line: &str) -> String {
    line.rsplit([' ', '/'])
        .next()
        .filter(|p| p.len() >= 8)
        .unwrap_or_else(|| panic!("no password in {line:?}"))
        .to_owned()
}

async fn login_status(app: &TestApp, email: &str, password: &str) -> StatusCode {
    app.post(
        "/v1/auth/login",
        None,
        json!({"email": email, "password": password}),
    )
    .await
    .status
}

/// Runs `boxoffice admin reset-password` (with `args`) on the store of `data_dir`
/// and `backend`; returns its exit status, stdout and stderr.
fn reset_password(
    data_dir: &std::path::Path,
    backend: &Backend,
    args: &[&str],
) -> (bool, String, String) {
    let out = binary()
        .args(["admin", "reset-password"])
        .args(args)
        .env("BOXOFFICE_DATA_DIR", data_dir)
        .env("BOXOFFICE_ADMIN_EMAIL", "boss@example.com")
        .envs(backend.env())
        .output()
        .expect("binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_busy_port_on_first_start_creates_nothing_and_the_next_start_shows_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let backend = Backend::from_env().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();

    // No BOXOFFICE_ADMIN_PASSWORD: the password is generated, as on a fresh machine.
    let mut first = server_command(&data, &backend, &[("BOXOFFICE_LISTEN", &taken_addr)]);
    first
        .env("BOXOFFICE_ADMIN_EMAIL", "boss@example.com")
        .env_remove("BOXOFFICE_ADMIN_PASSWORD");
    let out = first.output().expect("binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started on a taken port: {stderr}");
    assert!(
        stderr.contains(&format!("cannot serve on {taken_addr}"))
            && stderr.contains("already in use")
            && stderr.contains("--listen"),
        "unclear message: {stderr}"
    );
    assert!(!data.exists(), "a failed first start created {data:?}");
    drop(taken);

    let mut second = server_command(&data, &backend, &[]);
    second
        .env("BOXOFFICE_ADMIN_EMAIL", "boss@example.com")
        .env_remove("BOXOFFICE_ADMIN_PASSWORD");
    let mut p = Process::start(second);
    let password = password_in(&p.log_line_with("generated admin password for boss@example.com"));
    let app = TestApp::attach_as(p.addr, dir, backend, "boss@example.com", &password).await;
    assert_eq!(login_status(&app, "boss@example.com", &password).await, 200);

    // Lost it: reset on the stopped server's store…
    p.kill();
    let (ok, stdout, stderr) = reset_password(&data, &app.backend, &[]);
    assert!(ok, "{stderr}");
    let reset = password_in(
        stdout
            .lines()
            .find(|l| l.starts_with("new password for boss@example.com:"))
            .unwrap_or_else(|| panic!("{stdout}")),
    );
    assert_ne!(reset, password);
    let mut cmd = server_command(&data, &app.backend, &[]);
    cmd.env("BOXOFFICE_ADMIN_EMAIL", "boss@example.com")
        .env_remove("BOXOFFICE_ADMIN_PASSWORD");
    let p = Process::start(cmd);
    let mut app = app;
    app.addr = p.addr;
    assert!(p
        .line_with("admin:")
        .contains("boxoffice admin reset-password"));
    assert_eq!(login_status(&app, "boss@example.com", &password).await, 401);
    assert_eq!(login_status(&app, "boss@example.com", &reset).await, 200);

    // … and on the store of a running server, which takes it at once.
    let (ok, stdout, stderr) = reset_password(&data, &app.backend, &[]);
    assert!(ok, "{stderr}");
    let again = password_in(stdout.trim());
    assert_eq!(login_status(&app, "boss@example.com", &reset).await, 401);
    assert_eq!(login_status(&app, "boss@example.com", &again).await, 200);

    // Any account, by --email; an unknown one is a clear error.
    let email = "ann-reset@example.com";
    let r = app
        .post(
            "/v1/auth/register",
            None,
            json!({"email": email, "password": "password123"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let (ok, stdout, stderr) = reset_password(&data, &app.backend, &["--email", email]);
    assert!(ok, "{stderr}");
    assert_eq!(
        login_status(&app, email, &password_in(stdout.trim())).await,
        200
    );
    let (ok, _, stderr) = reset_password(&data, &app.backend, &["--email", "nobody@example.com"]);
    assert!(!ok);
    assert!(stderr.contains("no account nobody@example.com"), "{stderr}");
}

#[tokio::test]
async fn reset_password_on_an_empty_store_creates_the_admin() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::from_env().await;
    let (ok, stdout, stderr) = reset_password(dir.path(), &backend, &[]);
    assert!(ok, "{stderr}");
    let password = password_in(stdout.trim());
    let mut cmd = server_command(dir.path(), &backend, &[]);
    cmd.env("BOXOFFICE_ADMIN_EMAIL", "boss@example.com")
        .env_remove("BOXOFFICE_ADMIN_PASSWORD");
    let p = Process::start(cmd);
    // The admin exists: nothing generated, nothing shown.
    assert!(p.line_with("admin:").contains("log in as boss@example.com"));
    let app = TestApp::attach_as(p.addr, dir, backend, "boss@example.com", &password).await;
    // An admin's token: the admin-only venue list answers.
    assert_eq!(app.get("/v1/venues", Some(&app.admin)).await.status, 200);
}
