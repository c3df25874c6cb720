//! `boxoffice`: the one binary. `serve` (the default), `migrate`, `seed-demo`.

use boxoffice_server::startup::{cancel_on_signal, open_store, Application};
use boxoffice_server::{telemetry, Config};
use clap::{Parser, Subcommand};
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "boxoffice", version, about = "High-traffic event ticketing")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create another demo venue and event, on sale, and print its id.
    SeedDemo,
    /// Run the test payment gateway (a fake Stripe) alone, on BOXOFFICE_GATEWAY_LISTEN
    /// with its records in BOXOFFICE_DATA_DIR, for several nodes to share.
    TestGateway,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Arc::new(Config::load()?);
    telemetry::init(&config);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            open_store(&config, true).await?;
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
    }
}

async fn serve(config: Arc<Config>) -> anyhow::Result<()> {
    let built = Application::build(config.clone()).await?;
    let addr = built.address();
    let report = built.report().clone();
    let running = built.start();
    cancel_on_signal(running.shutdown_token());

    println!("boxoffice is serving on http://{addr}");
    match report.admin_created {
        Some((email, Some(password))) => {
            println!("admin account created: {email} / {password}");
            println!("  (the password was generated and is shown this once; set BOXOFFICE_ADMIN_PASSWORD to choose it)");
        }
        Some((email, None)) => {
            println!("admin account created: {email} (password from BOXOFFICE_ADMIN_PASSWORD)")
        }
        None => println!(
            "admin: log in as {} with the password set on first start",
            config.admin_email
        ),
    }
    if let Some(id) = report.demo_event {
        println!("demo event on sale: http://{addr}/v1/events/{id}");
    }
    println!("log in: curl -s -X POST http://{addr}/v1/auth/login -H 'content-type: application/json' -d '{{\"email\":\"{}\",\"password\":\"…\"}}'", config.admin_email);
    running.wait().await
}
