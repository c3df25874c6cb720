//! `boxoffice-loadgen <sale|holds|seatmap|queue|streams> --target URL[,URL...] …`: drives running
//! servers through a flash sale; writes a JSON report (and a markdown table beside
//! it); exits non-zero if the final audit finds anything wrong.

use boxoffice_loadgen::{run, run_queue, run_streams, Config, Mode, QueueConfig, StreamsConfig};
use clap::Parser;
use std::io::Write;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "boxoffice-loadgen",
    about = "Flash-sale load generator for boxoffice"
)]
struct Cli {
    mode: Mode,
    /// Base URLs of the nodes, comma-separated; buyers are spread over them.
    #[arg(long, value_delimiter = ',', required = true)]
    target: Vec<String>,
    #[arg(long, default_value = "admin@localhost")]
    admin_email: String,
    #[arg(long, env = "BOXOFFICE_ADMIN_PASSWORD")]
    admin_password: String,
    #[arg(long, default_value_t = 50_000)]
    seats: usize,
    /// GA capacity of the event's one GA tier (default: 5% of the seats).
    #[arg(long)]
    ga_capacity: Option<usize>,
    #[arg(long, default_value_t = 20_000)]
    buyers: usize,
    #[arg(long, default_value_t = 1_000)]
    connections: usize,
    /// Seconds: how long `holds` and `seatmap` run; a `sale` stops buying after it.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Seconds over which buyers arrive (0: all at once). Closed loop only.
    #[arg(long, default_value_t = 0)]
    ramp: u64,
    /// Open loop: N arrivals per second whatever the answers (a hold and its
    /// release, a seat-map read, or a buyer), at most one in flight per connection;
    /// latency counts from each arrival's scheduled time. Without it: closed loop.
    #[arg(long, value_name = "N", value_parser = positive_rate, conflicts_with = "ramp")]
    rate: Option<f64>,
    /// Buyer accounts to register (buyers share them).
    #[arg(long, default_value_t = 200)]
    accounts: usize,
    #[arg(long, default_value_t = 0.0)]
    decline_share: f64,
    #[arg(long, default_value_t = 0.0)]
    abandon_share: f64,
    /// Share of buyers who ask for general admission first (default: the GA tier's
    /// share of all places); everyone takes the other kind when theirs is gone.
    #[arg(long)]
    ga_share: Option<f64>,
    #[arg(long, default_value_t = 3)]
    retries: usize,
    #[arg(long, default_value_t = 300)]
    hold_ttl: u32,
    /// Server processes to measure (CPU, memory); default: whatever listens on the
    /// port of a target on this machine.
    #[arg(long, value_name = "PID", value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// `queue`: customers joining the waiting room.
    #[arg(long, default_value_t = 10_000)]
    joins: usize,
    /// `queue`: the room's admissions a minute.
    #[arg(long, default_value_t = 6_000)]
    admission_per_minute: u32,
    /// `queue`: most shoppers inside at once (default: no cap).
    #[arg(long)]
    max_active_shoppers: Option<u32>,
    /// `queue`: a shopper's session, seconds.
    #[arg(long, default_value_t = 600)]
    session_seconds: u32,
    /// `queue`: proof-of-work bits per join (0: none).
    #[arg(long, default_value_t = 0)]
    challenge_difficulty: u8,
    /// `queue`: the server's BOXOFFICE_SECRET_KEY, to sign the simulated customers'
    /// tokens here instead of registering each (argon2 makes a million
    /// registrations take hours).
    #[arg(long, env = "BOXOFFICE_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    /// `queue`: the room's Redis (`redis://host:port`), to measure its memory.
    #[arg(long)]
    redis_url: Option<String>,
    /// `queue`: how many queued users to check for fairness.
    #[arg(long, default_value_t = 2_000)]
    fairness_sample: usize,
    /// `sale` behind the event's waiting room, admitting N buyers a minute (each
    /// buyer then has an account of its own).
    #[arg(long, value_name = "N")]
    waiting_room: Option<u32>,
    /// `streams`: live seat-map streams to open.
    #[arg(long, default_value_t = 1_000)]
    streams: usize,
    /// `streams`: holds made (each released at once) while the streams follow.
    #[arg(long, default_value_t = 200)]
    holds: usize,
    /// `streams`: holds a second.
    #[arg(long, default_value_t = 20.0, value_parser = positive_rate)]
    hold_rate: f64,
    /// `streams`: how long each hold is kept before its release, milliseconds.
    #[arg(long, default_value_t = 1_000)]
    hold_ms: u64,
    /// Where to write the JSON report (a markdown table goes beside it, `.md`).
    #[arg(long)]
    report: Option<std::path::PathBuf>,
}

fn positive_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "{s:?} is not a positive number of arrivals per second"
        )),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let c = Cli::parse();
    if c.mode == Mode::Queue {
        let report = run_queue(QueueConfig {
            targets: c.target,
            admin_email: c.admin_email,
            admin_password: c.admin_password,
            joins: c.joins,
            connections: c.connections,
            admission_per_minute: c.admission_per_minute,
            max_active_shoppers: c.max_active_shoppers,
            session_seconds: c.session_seconds,
            challenge_difficulty: c.challenge_difficulty,
            duration: Duration::from_secs(c.duration),
            secret_key: c.secret_key,
            redis_url: c.redis_url,
            fairness_sample: c.fairness_sample,
            server_pids: c.server_pid,
        })
        .await?;
        let failed = (!report.passed).then(|| format!("queue run failed: {:?}", report.failures));
        return emit(&report, report.markdown(), c.report, failed);
    }
    if c.mode == Mode::Streams {
        let report = run_streams(StreamsConfig {
            targets: c.target,
            admin_email: c.admin_email,
            admin_password: c.admin_password,
            streams: c.streams,
            seats: c.seats,
            holds: c.holds,
            hold_rate: c.hold_rate,
            hold_for: Duration::from_millis(c.hold_ms),
            accounts: c.accounts.min(50),
            server_pids: c.server_pid,
        })
        .await?;
        let failed = (!report.passed).then(|| format!("streams run failed: {:?}", report.failures));
        return emit(&report, report.markdown(), c.report, failed);
    }
    let ga_capacity = c.ga_capacity.unwrap_or(c.seats / 20);
    let ga_share = c
        .ga_share
        .unwrap_or(ga_capacity as f64 / (c.seats + ga_capacity).max(1) as f64);
    let cfg = Config {
        mode: c.mode,
        targets: c.target,
        admin_email: c.admin_email,
        admin_password: c.admin_password,
        seats: c.seats,
        ga_capacity,
        buyers: c.buyers,
        connections: c.connections,
        duration: Duration::from_secs(c.duration),
        ramp: Duration::from_secs(c.ramp),
        rate: c.rate,
        accounts: c.accounts,
        decline_share: c.decline_share,
        abandon_share: c.abandon_share,
        ga_share,
        retries: c.retries,
        hold_ttl_seconds: c.hold_ttl,
        server_pids: c.server_pid,
        waiting_room: c.waiting_room,
    };
    let report = run(cfg).await?;
    let failed =
        (!report.audit_passed).then(|| format!("audit failed: {:?}", report.audit_failures));
    emit(&report, report.markdown(), c.report, failed)
}

/// Writes the JSON report and its markdown beside it (when asked), prints the
/// markdown, and exits 2 with `failed` if the run failed.
fn emit(
    report: &impl serde::Serialize,
    md: String,
    path: Option<std::path::PathBuf>,
    failed: Option<String>,
) -> anyhow::Result<()> {
    if let Some(path) = path {
        std::fs::write(&path, serde_json::to_string_pretty(report)?)?;
        std::fs::write(path.with_extension("md"), &md)?;
    }
    // One write, and a reader that stops early (`| head -1`) is not an error of the
    // run: the report is on disk already.
    let _ = std::io::stdout()
        .lock()
        .write_all(format!("{md}\n").as_bytes());
    if let Some(why) = failed {
        eprintln!("{why}");
        std::process::exit(2);
    }
    Ok(())
}
