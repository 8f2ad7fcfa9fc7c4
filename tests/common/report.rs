//! The suites' reports: availability per phase, side and operation, the
//! errors seen, heal times; and the small helpers the suites share
//! (environment, logs, time of day).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::faults::{Fault, Phase};
use super::netns::NetCluster;
use super::workload::{HealResult, Op, OpRecord};

pub fn pct(ok: usize, tries: usize) -> Option<f64> {
    (tries > 0).then(|| 100.0 * ok as f64 / tries as f64)
}

pub fn show_pct(p: Option<f64>) -> String {
    p.map_or("-".into(), |p| format!("{p:.1}%"))
}

pub fn show_ms(d: Option<Duration>) -> String {
    d.map_or("never".into(), |d| format!("{} ms", d.as_millis()))
}

/// Counts per (phase, side, op): (successes, attempts, error counts).
pub type Tally = BTreeMap<(usize, &'static str, Op), (usize, usize, BTreeMap<String, usize>)>;

/// Counts the requests per phase, side and op. Requests that start within
/// `recovery` of a heal count on the heal's `recovering` side, not `all`.
pub fn tally(ops: &[OpRecord], phases: &[Phase], starts: &[Instant], recovery: Duration) -> Tally {
    let mut t: Tally = BTreeMap::new();
    for r in ops {
        let fault = &phases[r.phase].fault;
        let recovering = matches!(fault, Fault::Healthy)
            && r.phase > 0
            && starts.get(r.phase).is_some_and(|s| r.at < *s + recovery);
        let side = if recovering {
            "recovering"
        } else {
            fault.side(r.node)
        };
        for side in if side == "all" || side == "recovering" {
            vec![side]
        } else {
            vec![side, "all"]
        } {
            let e = t.entry((r.phase, side, r.op)).or_default();
            e.1 += 1;
            match &r.error {
                None => e.0 += 1,
                Some(code) => *e.2.entry(code.clone()).or_default() += 1,
            }
        }
    }
    t
}

pub fn ratio(t: &Tally, phase: usize, side: &'static str, op: Op) -> (usize, usize) {
    t.get(&(phase, side, op)).map_or((0, 0), |e| (e.0, e.1))
}

/// The markdown-ish availability table, a row per phase and side.
pub fn availability_table(t: &Tally, phases: &[Phase]) -> String {
    let mut out = String::new();
    out.push_str("| # | phase | s | side | get ok/tries | get | put ok/tries | put | errors |\n");
    out.push_str("| ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | --- |\n");
    for (i, phase) in phases.iter().enumerate() {
        let mut sides: Vec<&'static str> = phase.fault.sides().to_vec();
        if sides != ["all"] {
            sides.push("all");
        } else if i > 0 {
            sides.insert(0, "recovering");
        }
        for side in sides {
            let (gok, gtries) = ratio(t, i, side, Op::Get);
            let (pok, ptries) = ratio(t, i, side, Op::Put);
            if side == "recovering" && gtries + ptries == 0 {
                continue;
            }
            let mut errors: BTreeMap<&str, usize> = BTreeMap::new();
            for op in [Op::Get, Op::Put] {
                if let Some(e) = t.get(&(i, side, op)) {
                    for (code, n) in &e.2 {
                        *errors.entry(code).or_default() += n;
                    }
                }
            }
            writeln!(
                out,
                "| {i} | {} | {:.1} | {side} | {gok}/{gtries} | {} | {pok}/{ptries} | {} | {} |",
                label(phases, i),
                phase.duration.as_secs_f64(),
                show_pct(pct(gok, gtries)),
                show_pct(pct(pok, ptries)),
                show_errors(&errors),
            )
            .unwrap();
        }
    }
    out
}

/// `code count, ...`
pub fn show_errors(errors: &BTreeMap<&str, usize>) -> String {
    errors
        .iter()
        .map(|(c, n)| format!("{c} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Per phase, side, op and error code: how many, when (seconds since the
/// phase started, by the request's start) and the first message.
pub fn error_samples(ops: &[OpRecord], phases: &[Phase], starts: &[Instant]) -> String {
    type Seen<'a> = (usize, f64, f64, &'a str);
    let mut seen: BTreeMap<(usize, &'static str, Op, &str), Seen> = BTreeMap::new();
    for r in ops {
        if let (Some(code), Some(detail)) = (&r.error, &r.detail) {
            let side = phases[r.phase].fault.side(r.node);
            let t =
                r.at.saturating_duration_since(starts[r.phase])
                    .as_secs_f64();
            let e = seen
                .entry((r.phase, side, r.op, code))
                .or_insert((0, t, t, detail));
            e.0 += 1;
            e.1 = e.1.min(t);
            e.2 = e.2.max(t);
        }
    }
    let mut out = String::new();
    for ((phase, side, op, _), (n, from, to, detail)) in seen {
        writeln!(
            out,
            "  phase {phase} {side} {op:?}: {n} from +{from:.2} s to +{to:.2} s; first: {detail}"
        )
        .unwrap();
    }
    out
}

/// A phase's name in the tables: a healthy phase after a fault is a heal.
pub fn label(phases: &[Phase], i: usize) -> String {
    match phases[i].fault {
        Fault::Healthy if i > 0 => "heal".into(),
        ref fault => fault.name(),
    }
}

pub fn heal_table(heals: &[HealResult]) -> String {
    let mut out = String::new();
    out.push_str("| heal of | probes | first ok | all ok |\n| --- | ---: | ---: | ---: |\n");
    for h in heals {
        writeln!(
            out,
            "| {} | {} | {} | {} |",
            h.fault,
            h.probes,
            show_ms(h.first_ok),
            show_ms(h.all_ok)
        )
        .unwrap();
    }
    out
}

pub fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
        Err(_) => default,
    }
}

pub fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

/// Copies the node logs out of the cluster's temporary directories, to
/// `target/tmp/<suite>-<pid>/`.
pub fn keep_logs(cluster: &NetCluster, suite: &str) -> PathBuf {
    let to =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{suite}-{}", std::process::id()));
    std::fs::create_dir_all(&to).unwrap();
    for node in &cluster.cluster.nodes {
        let log = node.data_dir.with_extension("log");
        let _ = std::fs::copy(&log, to.join(format!("{}.log", node.id)));
    }
    to
}

/// Wall-clock time of day, UTC, as the node logs print it (to find a
/// phase's start in them).
pub fn utc_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let day_ms = now.as_millis() % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}Z",
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1000 % 60,
        day_ms % 1000
    )
}
