//! The command line as a user meets it: settings as flags after the subcommand,
//! `--help` naming every variable, `boxoffice config` with secrets redacted, and
//! logs without colour codes when they go to a pipe.

use crate::helpers::*;

fn run(cmd: &mut std::process::Command) -> (bool, String, String) {
    let out = cmd.output().expect("binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn serve_takes_its_settings_as_flags() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = binary();
    cmd.arg("serve")
        .args([
            "--listen",
            "127.0.0.1:0",
            "--demo",
            "false",
            "--log",
            "warn",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "--admin-email",
            ADMIN_EMAIL,
            "--admin-password",
            ADMIN_PASSWORD,
        ]);
    let p = Process::start(cmd);
    let app = TestApp::attach(p.addr, dir, Backend::default()).await;
    assert!(
        app.data_dir.path().join("boxoffice.db").exists(),
        "--data-dir ignored"
    );
    // --demo false: nothing seeded.
    let events = app.get("/v1/events", None).await;
    assert_eq!(events.body["events"].as_array().unwrap().len(), 0);
}

#[test]
fn help_lists_every_setting_with_its_variable() {
    let (ok, help, _) = run(binary().arg("--help"));
    assert!(ok);
    for (flag, var) in [
        ("--listen", "BOXOFFICE_LISTEN"),
        ("--data-dir", "BOXOFFICE_DATA_DIR"),
        ("--database-url", "BOXOFFICE_DATABASE_URL"),
        ("--redis-url", "BOXOFFICE_REDIS_URL"),
        ("--nats-url", "BOXOFFICE_NATS_URL"),
        (
            "--gateway-breaker-cooldown-ms",
            "BOXOFFICE_GATEWAY_BREAKER_COOLDOWN_MS",
        ),
        ("--config", "BOXOFFICE_CONFIG"),
    ] {
        assert!(
            help.contains(flag) && help.contains(var),
            "{flag} / {var} missing:\n{help}"
        );
    }
    assert!(
        help.contains("reset-password") || help.contains("admin"),
        "{help}"
    );
}

#[test]
fn config_prints_the_effective_settings_with_secrets_redacted() {
    let (ok, out, err) = run(binary()
        .args([
            "config",
            "--listen",
            "127.0.0.1:9999",
            "--payment-workers",
            "3",
        ])
        .env("BOXOFFICE_LISTEN", "127.0.0.1:1111")
        .env("BOXOFFICE_ADMIN_PASSWORD", "hunter2-admin")
        .env(
            "BOXOFFICE_DATABASE_URL",
            "postgres://app:hunter2-db@db.example:5432/box",
        )
        .env("BOXOFFICE_STRIPE_SECRET_KEY", "sk_test_hunter2"));
    assert!(ok, "{err}");
    assert!(!out.contains("hunter2"), "a secret leaked:\n{out}");
    for line in [
        "listen = \"127.0.0.1:9999\"",
        "payment_workers = 3",
        "admin_password = \"<redacted>\"",
        "database_url = \"postgres://app:<redacted>@db.example:5432/box\"",
        "stripe_secret_key = \"<redacted>\"",
        "# redis_url (unset)",
    ] {
        assert!(out.lines().any(|l| l == line), "no {line:?} in:\n{out}");
    }
    // A misspelled variable is still an error, not a default.
    let (ok, _, err) = run(binary()
        .arg("config")
        .env("BOXOFFICE_DATABSE_URL", "postgres://x"));
    assert!(!ok && err.contains("databse_url"), "{err}");
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, logs) = run(binary()
        .args(["migrate", "--log", "debug"])
        .arg("--data-dir")
        .arg(dir.path()));
    assert!(ok, "{logs}");
    assert!(logs.contains("DEBUG"), "expected debug logs, got {logs:?}");
    assert!(
        !logs.contains('\u{1b}'),
        "escape codes in piped logs: {logs:?}"
    );
}
