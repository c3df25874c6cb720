//! `boxoffice`: the one binary. `serve` (the default), `migrate`, `seed-demo`,
//! `test-gateway`, `config`, `admin reset-password`, `audit verify`. A thin shim: the command line
//! is `cli.rs`, everything else the library.

use anyhow::Context;
use boxoffice_server::cli::{AdminCommand, AuditCommand, Cli, Command, TlsCommand};
use boxoffice_server::startup::{cancel_on_signal, open_store, Application};
use boxoffice_server::{telemetry, Config};
use clap::Parser;
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Tls {
        command: TlsCommand::SelfSigned { out, names },
    }) = &cli.command
    {
        let (cert, key) = boxoffice_server::tls::self_signed(out, names)?;
        println!(
            "wrote {} and {} (self-signed: for trying HTTPS, not for production)",
            cert.display(),
            key.display()
        );
        println!(
            "serve with: BOXOFFICE_TLS_CERT={} BOXOFFICE_TLS_KEY={} boxoffice serve",
            cert.display(),
            key.display()
        );
        return Ok(());
    }
    let config = Arc::new(Config::load_with(cli.config.clone(), &cli.settings)?);
    telemetry::init(&config);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            open_store(&config, true).await?.close().await;
            println!("migrations applied");
            Ok(())
        }
        Command::SeedDemo => {
            let mut c = (*config).clone();
            c.demo = false;
            c.listen = "127.0.0.1:0".parse()?;
            let built = Application::build(Arc::new(c)).await?;
            let id = boxoffice_server::demo::seed(built.app()).await?;
            println!("demo event {id} is on sale");
            Ok(())
        }
        Command::TestGateway => {
            let fake = boxoffice_payments::FakeStripe::start(
                &config.data_dir,
                config.gateway_listen,
                boxoffice_payments::FakeStripeConfig {
                    latency: std::time::Duration::from_millis(config.gateway_latency_ms),
                    failure_rate: config.gateway_failure_rate,
                },
            )
            .await?;
            println!("test payment gateway (fake Stripe) on {}", fake.url());
            println!("point nodes at it: BOXOFFICE_GATEWAY=stripe BOXOFFICE_STRIPE_URL={} BOXOFFICE_STRIPE_SECRET_KEY={}", fake.url(), boxoffice_payments::TEST_SECRET_KEY);
            let stop = tokio_util::sync::CancellationToken::new();
            cancel_on_signal(stop.clone());
            stop.cancelled().await;
            fake.stop().await;
            Ok(())
        }
        Command::Tls { .. } => unreachable!("handled before the configuration is read"),
        Command::Audit {
            command: AuditCommand::Verify,
        } => match boxoffice_server::startup::verify_audit(&config).await? {
            Ok(v) => {
                println!(
                    "audit chain intact: {} records, {} signed checkpoints",
                    v.records, v.checkpoints
                );
                Ok(())
            }
            Err(t) => {
                eprintln!("audit chain broken: {t}");
                std::process::exit(1);
            }
        },
        Command::Config => {
            println!("# boxoffice's effective configuration: defaults, then the config file,");
            println!("# then BOXOFFICE_* variables, then flags. Secrets are redacted.");
            print!("{}", config.to_redacted_toml());
            Ok(())
        }
        Command::Admin {
            command: AdminCommand::ResetPassword { email },
        } => {
            let email = email.unwrap_or_else(|| config.admin_email.clone());
            let store = open_store(&config, config.auto_migrate).await?;
            let reset = boxoffice_app::identity::reset_password(
                store.store().as_ref(),
                &boxoffice_ports::SystemClock,
                &email,
            )
            .await;
            store.close().await;
            let password = match reset {
                Err(boxoffice_app::AppError::NotFound) => anyhow::bail!(
                    "there is no account {email} in this store (--email names another one)"
                ),
                r => r.with_context(|| format!("resetting the password of {email}"))?,
            };
            println!("new password for {email}: {password}");
            Ok(())
        }
    }
}

async fn serve(config: Arc<Config>) -> anyhow::Result<()> {
    let built = Application::build(config.clone()).await?;
    let addr = built.address();
    let scheme = if config.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let report = built.report().clone();
    let built_metrics = built.metrics_address();
    let running = built.start();
    cancel_on_signal(running.shutdown_token());

    println!("boxoffice is serving on {scheme}://{addr}");
    if let Some(m) = built_metrics {
        println!("metrics on http://{m}/metrics");
    }
    match report.admin_created {
        Some((email, Some(password))) => {
            // To the log (stderr), once, never to stdout: stdout is what scripts
            // capture and pass around; the log is the operator's.
            tracing::warn!(
                "==== generated admin password for {email}, shown only this once (set \
                 BOXOFFICE_ADMIN_PASSWORD before the first start to choose it; \
                 `boxoffice admin reset-password` makes a new one): {password}"
            );
            println!("admin account created: {email} (its generated password is in the log, on stderr, shown this once)");
        }
        Some((email, None)) => {
            println!("admin account created: {email} (password from BOXOFFICE_ADMIN_PASSWORD)")
        }
        None if config.admin_password.is_some() => println!(
            "admin: the account exists, so BOXOFFICE_ADMIN_PASSWORD is ignored; `boxoffice admin reset-password` gives it a new one"
        ),
        None => println!(
            "admin: log in as {} with its password (forgotten? `boxoffice admin reset-password`)",
            config.admin_email
        ),
    }
    if let Some(id) = report.demo_event {
        println!("demo event on sale: {scheme}://{addr}/v1/events/{id}");
    }
    println!("log in: curl -s -X POST {scheme}://{addr}/v1/auth/login -H 'content-type: application/json' -d '{{\"email\":\"{}\",\"password\":\"…\"}}'", config.admin_email);
    running.wait().await
}
