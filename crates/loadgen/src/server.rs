//! What the server under test spent during the timed part, read from Linux's /proc:
//! CPU seconds (`/proc/<pid>/stat`), peak memory (`VmHWM`) and resident memory
//! (`VmRSS`) from `/proc/<pid>/status`; and finding the server's pid when it is not
//! given, from the socket listening on a local target's port.
//!
//! Everything here reports why it could not measure rather than failing the run: a
//! load test against a remote server, or on a machine without /proc, still runs.

use serde::Serialize;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// The server's resources over the timed part (all processes summed where it makes
/// sense).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServerResources {
    /// `--server-pid`, or `listening on 127.0.0.1:PORT` when found from the target.
    pub found_by: String,
    /// CPU seconds (user + system) the processes used during the timed part.
    pub cpu_seconds: f64,
    /// `cpu_seconds` over the timed part's length: average cores kept busy.
    pub cpu_cores: f64,
    pub processes: Vec<ServerProcess>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServerProcess {
    pub pid: u32,
    pub cpu_seconds: f64,
    /// `VmHWM` at the end: the peak resident set since the process started (not
    /// since the timed part did; compare with `rss_before_kib`).
    pub peak_rss_kib: u64,
    /// `VmRSS` just before and just after the timed part.
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
}

/// One reading of one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sample {
    /// utime + stime, in clock ticks.
    cpu_ticks: u64,
    rss_kib: u64,
    hwm_kib: u64,
}

impl Sample {
    /// CPU seconds used between `before` and this reading.
    pub(crate) fn cpu_seconds_since(&self, before: &Sample) -> f64 {
        self.cpu_ticks.saturating_sub(before.cpu_ticks) as f64 / ticks_per_second() as f64
    }
}

pub(crate) fn sample(pid: u32) -> Result<Sample, String> {
    let read = |f: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/{f}"))
            .map_err(|e| format!("reading /proc/{pid}/{f}: {e}"))
    };
    let stat = read("stat")?;
    let status = read("status")?;
    let bad = |what: &str| format!("/proc/{pid}: no {what} found");
    Ok(Sample {
        cpu_ticks: cpu_ticks(&stat).ok_or_else(|| bad("utime/stime in stat"))?,
        rss_kib: status_kib(&status, "VmRSS").ok_or_else(|| bad("VmRSS"))?,
        hwm_kib: status_kib(&status, "VmHWM").ok_or_else(|| bad("VmHWM"))?,
    })
}

/// utime + stime from a `/proc/<pid>/stat` line. The command name (field 2) is in
/// parentheses and may itself hold spaces and parentheses, so fields are counted
/// from the last `)`: state is field 3, utime 14 and stime 15.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_ascii_whitespace().skip(14 - 3);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// A `Key:   1234 kB` line of `/proc/<pid>/status`, in KiB.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix(':')?;
        v.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// Clock ticks per second of /proc's CPU times (USER_HZ), as the kernel tells this
/// process in its auxiliary vector (`AT_CLKTCK`); 100, its value on every common
/// architecture, if that cannot be read.
pub(crate) fn ticks_per_second() -> u64 {
    std::fs::read("/proc/self/auxv")
        .ok()
        .and_then(|a| clock_ticks(&a))
        .unwrap_or(100)
}

/// `AT_CLKTCK` in an auxiliary vector: (key, value) pairs of native words.
fn clock_ticks(auxv: &[u8]) -> Option<u64> {
    const AT_CLKTCK: usize = 17;
    const WORD: usize = std::mem::size_of::<usize>();
    let word = |b: &[u8]| b.try_into().ok().map(usize::from_ne_bytes);
    auxv.chunks_exact(2 * WORD)
        .find_map(|pair| (word(&pair[..WORD])? == AT_CLKTCK).then(|| word(&pair[WORD..]))?)
        .filter(|&t| t > 0)
        .map(|t| t as u64)
}

/// Inodes of the sockets in state LISTEN on `port` in a `/proc/net/tcp` or
/// `/proc/net/tcp6` table (any local address: a server bound to 0.0.0.0 serves
/// 127.0.0.1 too).
fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    const LISTEN: &str = "0A";
    table
        .lines()
        .skip(1) // the header
        .filter_map(|l| {
            let f: Vec<&str> = l.split_ascii_whitespace().collect();
            let local_port = f.get(1)?.rsplit_once(':')?.1;
            let ok = u16::from_str_radix(local_port, 16).ok()? == port && *f.get(3)? == LISTEN;
            let inode: u64 = f.get(9)?.parse().ok()?;
            (ok && inode != 0).then_some(inode)
        })
        .collect()
}

/// Processes holding one of these sockets open (only those whose /proc/<pid>/fd
/// this user may read: one's own).
fn pids_holding(proc_root: &Path, inodes: &BTreeSet<u64>) -> Vec<u32> {
    let Ok(procs) = std::fs::read_dir(proc_root) else {
        return vec![];
    };
    let mut pids = Vec::new();
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue; // gone, or another user's
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).ok().is_some_and(|l| {
                l.to_str()
                    .and_then(|s| s.strip_prefix("socket:[")?.strip_suffix(']'))
                    .and_then(|n| n.parse().ok())
                    .is_some_and(|n: u64| inodes.contains(&n))
            })
        });
        if holds {
            pids.push(pid);
        }
    }
    pids
}

/// The pids listening on TCP `port` on this machine.
pub fn listener_pids(port: u16) -> Vec<u32> {
    let inodes: BTreeSet<u64> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|t| std::fs::read_to_string(t).ok())
        .flat_map(|t| listening_inodes(&t, port))
        .collect();
    if inodes.is_empty() {
        return vec![];
    }
    pids_holding(Path::new("/proc"), &inodes)
}

/// The port of a target URL on this machine (`localhost` or a loopback address).
fn local_port(target: &str) -> Option<u16> {
    let url = reqwest::Url::parse(target).ok()?;
    let host = url.host_str()?;
    // An IPv6 host comes bracketed.
    let ip = host.trim_start_matches('[').trim_end_matches(']');
    let local = host.eq_ignore_ascii_case("localhost")
        || ip
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if local {
        url.port_or_known_default()
    } else {
        None
    }
}

/// The server processes watched over the timed part, and their readings before it.
#[derive(Debug)]
pub(crate) struct Watch {
    found_by: String,
    before: Vec<(u32, Sample)>,
    /// Targets not measured (not on this machine), said in the report's note.
    unmeasured: Vec<String>,
}

impl Watch {
    /// Finds the server's processes (`pids` given, or those listening on the local
    /// targets' ports) and reads them before the timed part. `Err`: why not.
    pub(crate) fn start(pids: &[u32], targets: &[String]) -> Result<Self, String> {
        let mut unmeasured = Vec::new();
        let (pids, found_by) = if !pids.is_empty() {
            (pids.to_vec(), "--server-pid".to_owned())
        } else {
            let mut found = BTreeSet::new();
            let mut ports = Vec::new();
            for t in targets {
                let Some(port) = local_port(t) else {
                    unmeasured.push(format!("{t} is not on this machine"));
                    continue;
                };
                let pids = listener_pids(port);
                if pids.is_empty() {
                    unmeasured.push(format!("no readable process listens on port {port} ({t})"));
                }
                found.extend(pids);
                ports.push(port.to_string());
            }
            if found.is_empty() {
                return Err(format!("{}; pass --server-pid", unmeasured.join("; ")));
            }
            let by = format!("listening on port {}", ports.join(","));
            (found.into_iter().collect(), by)
        };
        let before = pids
            .iter()
            .map(|&p| sample(p).map(|s| (p, s)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            found_by,
            before,
            unmeasured,
        })
    }

    /// The processes' resident sets summed, as read at the start (KiB).
    pub(crate) fn rss_before_kib(&self) -> u64 {
        self.before.iter().map(|(_, s)| s.rss_kib).sum()
    }

    /// The processes' resident sets summed, now (KiB).
    pub(crate) fn finish_rss(&self) -> Result<u64, String> {
        self.before
            .iter()
            .map(|(pid, _)| sample(*pid).map(|s| s.rss_kib))
            .sum()
    }

    /// Reads the processes again after the timed part. The note (second) says what
    /// was not measured, if anything.
    pub(crate) fn finish(self, elapsed: Duration) -> (Option<ServerResources>, Option<String>) {
        let mut processes = Vec::new();
        for (pid, before) in &self.before {
            let after = match sample(*pid) {
                Ok(s) => s,
                Err(e) => return (None, Some(e)),
            };
            processes.push(ServerProcess {
                pid: *pid,
                cpu_seconds: after.cpu_seconds_since(before),
                peak_rss_kib: after.hwm_kib,
                rss_before_kib: before.rss_kib,
                rss_after_kib: after.rss_kib,
            });
        }
        let cpu_seconds: f64 = processes.iter().map(|p| p.cpu_seconds).sum();
        let note = (!self.unmeasured.is_empty())
            .then(|| format!("not measured: {}", self.unmeasured.join("; ")));
        let r = ServerResources {
            found_by: self.found_by,
            cpu_seconds,
            cpu_cores: cpu_seconds / elapsed.as_secs_f64().max(1e-9),
            processes,
        };
        (Some(r), note)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_past_a_command_name_with_spaces_and_parentheses() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt
        // cmajflt utime stime cutime cstime ...
        let stat = "4242 (tokio (rt) 1) S 1 4242 4242 0 -1 4194560 900 0 3 0 1234 567 8 9 20 0 5 0 100 123456789 2500";
        assert_eq!(cpu_ticks(stat), Some(1234 + 567));
        assert_eq!(cpu_ticks("4242 (truncated"), None);
        assert_eq!(cpu_ticks("4242 (x) S 1 2"), None);
    }

    #[test]
    fn peak_and_resident_memory_come_from_status() {
        let status = "Name:\tboxoffice\nVmPeak:\t 2000000 kB\nVmHWM:\t  153600 kB\nVmRSS:\t   81920 kB\nRssAnon:\t 70000 kB\n";
        assert_eq!(status_kib(status, "VmHWM"), Some(153_600));
        assert_eq!(status_kib(status, "VmRSS"), Some(81_920));
        assert_eq!(status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn only_the_listening_socket_on_the_port_is_taken() {
        // Port 18555 is 0x487B; 18556 is 0x487C.
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:487B 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111111 1 0000000000000000 100 0 0 10 0\n\
   1: 0100007F:487B 0100007F:B2C4 01 00000000:00000000 00:00000000 00000000  1000        0 222222 1 0000000000000000 20 4 30 10 -1\n\
   2: 00000000:487C 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 333333 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(listening_inodes(tcp, 18555), vec![111111]);
        assert_eq!(listening_inodes(tcp, 18556), vec![333333]);
        assert!(listening_inodes(tcp, 80).is_empty());
        let tcp6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000000000000000000001000000:487B 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 444444 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(listening_inodes(tcp6, 18555), vec![444444]);
    }

    #[test]
    fn the_process_listening_on_a_port_is_found() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        assert_eq!(listener_pids(port), vec![std::process::id()]);
        drop(l);
        assert_eq!(
            listener_pids(port),
            Vec::<u32>::new(),
            "no longer listening"
        );
    }

    #[test]
    fn only_loopback_targets_are_looked_up() {
        assert_eq!(local_port("http://127.0.0.1:18555"), Some(18555));
        assert_eq!(local_port("http://localhost:9000/"), Some(9000));
        assert_eq!(local_port("http://[::1]:7000"), Some(7000));
        assert_eq!(local_port("http://localhost"), Some(80));
        assert_eq!(local_port("http://10.0.0.5:18555"), None);
        assert_eq!(local_port("http://example.com:18555"), None);
        assert_eq!(local_port("not a url"), None);
    }

    #[test]
    fn this_process_can_be_watched() {
        let pid = std::process::id();
        let w = Watch::start(&[pid], &[]).expect("own /proc entry");
        // Busy work (not a sleep) until the kernel has charged this process 20
        // ticks more, so the reading has something to show.
        let ticks = |s: Sample| s.cpu_ticks;
        let first = ticks(sample(pid).expect("own stat"));
        let began = std::time::Instant::now();
        let mut x = 0u64;
        while ticks(sample(pid).expect("own stat")) < first + 20 {
            for _ in 0..100_000 {
                x = x.wrapping_add(std::hint::black_box(1));
            }
        }
        let (r, note) = w.finish(began.elapsed());
        assert!(x > 0);
        assert_eq!(note, None);
        let r = r.expect("measured");
        assert_eq!(r.found_by, "--server-pid");
        let p = &r.processes[0];
        assert_eq!(p.pid, pid);
        let at_least = 20.0 / ticks_per_second() as f64;
        assert!(r.cpu_seconds >= at_least, "{r:?}");
        assert_eq!(r.cpu_seconds, p.cpu_seconds);
        assert!(
            p.peak_rss_kib >= p.rss_after_kib && p.rss_after_kib > 0,
            "{p:?}"
        );
    }

    #[test]
    fn the_tick_rate_comes_from_the_auxiliary_vector() {
        let w = std::mem::size_of::<usize>();
        let mut auxv = Vec::new();
        for (k, v) in [(6usize, 4096usize), (17, 250), (0, 0)] {
            auxv.extend_from_slice(&k.to_ne_bytes());
            auxv.extend_from_slice(&v.to_ne_bytes());
        }
        assert_eq!(clock_ticks(&auxv), Some(250));
        assert_eq!(clock_ticks(&auxv[..2 * w]), None, "no AT_CLKTCK");
        let own = std::fs::read("/proc/self/auxv").expect("own auxv");
        assert!(clock_ticks(&own).is_some(), "the kernel passes AT_CLKTCK");
    }

    #[test]
    fn an_unreachable_server_is_reported_with_the_reason() {
        let e = Watch::start(&[], &["http://10.0.0.5:18555".to_owned()]).unwrap_err();
        assert!(
            e.contains("not on this machine") && e.contains("--server-pid"),
            "{e}"
        );
        let e = Watch::start(&[u32::MAX], &[]).unwrap_err();
        assert!(e.contains(&format!("/proc/{}/stat", u32::MAX)), "{e}");
    }
}
