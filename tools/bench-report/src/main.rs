//! Turns the output of `cargo bench` into `docs/benchmarks.svg` and the results section of
//! `docs/benchmarks.md`. Maintainer tooling: a workspace member, not part of the published crate.
//!
//! ```text
//! cargo bench                              # writes target/criterion/
//! cargo run --release -p bench-report      # reads it, writes docs/benchmarks.{svg,md}
//! ```
//!
//! It reads criterion's `target/criterion/<group>/<function>/<implementation>/new/estimates.json`
//! (the slope estimate, else the mean), the contended throughput from
//! `target/criterion/summary.tsv` (the summary table every bench target records, see
//! `benches/common/report.rs`), `target/criterion/wait_tail/latency.json` and
//! `target/criterion/syscalls/futex.json` (written by `benches/semaphore.rs` and
//! `benches/syscalls.rs`). The chart shows every implementation's cost relative to
//! futex-semaphore, per scenario, on a log scale. The Markdown (tables, ratios and the verdict on
//! each target) replaces what stands between `<!-- results:begin -->` and `<!-- results:end -->`
//! in `docs/benchmarks.md`; without those markers it is printed instead.
//!
//! Its first line names the run. A partial `cargo bench` overwrites some of those files and not
//! the others: when the files it reads were written further apart than one full run takes
//! ([`ONE_RUN_SECS`]), that line says the figures come from runs between those times instead (and
//! stderr says so too).
//!
//! `$CRITERION_HOME` or `$CARGO_TARGET_DIR` choose the input as they do for criterion.

// The calendar arithmetic the benches' summary table uses too: one copy.
#[path = "../../../benches/common/civil.rs"]
mod civil;
// And the table formatter: one for the summary table and these Markdown tables (its text form
// serves the summary only).
#[allow(dead_code)]
#[path = "../../../benches/common/table.rs"]
mod table;

use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use table::{Align, Table};

/// The implementations, in the order of the tables; the floor is only in `uncontended`.
const IMPLS: [&str; 6] = ["futex-semaphore", "std", "parking_lot", "sem_t", "tokio", "async-lock"];
const OURS: &str = "futex-semaphore";
const FLOOR: &str = "floor";
const PEERS: [&str; 5] = ["std", "parking_lot", "sem_t", "tokio", "async-lock"];
const SHAPES: [&str; 4] = ["2t-1p", "8t-2p", "32t-4p", "64t-8p"];

/// A criterion estimate in nanoseconds, with its 95 % confidence interval.
#[derive(Clone, Copy)]
struct Est {
    ns: f64,
    lo: f64,
    hi: f64,
}

struct Data {
    dir: PathBuf,
}

impl Data {
    /// The time per element of `group/function/imp` (per iteration where the benchmark sets no
    /// element throughput): criterion's slope, else its mean.
    fn est(&self, group: &str, function: &str, imp: &str) -> Option<Est> {
        let dir = self.dir.join(group).join(function).join(imp).join("new");
        let read = |file: &str| -> Option<Value> {
            serde_json::from_str(&std::fs::read_to_string(dir.join(file)).ok()?).ok()
        };
        let json = read("estimates.json")?;
        let elements =
            read("benchmark.json").and_then(|b| b["throughput"]["Elements"].as_f64()).unwrap_or(1.0);
        let e = json.get("slope").filter(|v| !v.is_null()).or_else(|| json.get("mean"))?;
        let ci = &e["confidence_interval"];
        Some(Est {
            ns: e["point_estimate"].as_f64()? / elements,
            lo: ci["lower_bound"].as_f64()? / elements,
            hi: ci["upper_bound"].as_f64()? / elements,
        })
    }

    /// Nanoseconds per acquire/release pair in a contended shape such as `8t-2p`: the median
    /// throughput of the timed runs, from the summary file (no interval: `lo` and `hi` are the
    /// point).
    fn contended(&self, shape: &str, imp: &str) -> Option<Est> {
        let prefix = format!("contended {shape} ");
        let mops: f64 = self
            .contended_rows()
            .into_iter()
            .find_map(|f| (f[1].starts_with(&prefix) && f[2] == imp).then(|| f[3].parse().ok()).flatten())?;
        let ns = 1000.0 / mops;
        Some(Est { ns, lo: ns, hi: ns })
    }

    /// The contended rows of `summary.tsv`, split into their fields (`benches/common/report.rs`:
    /// bench, scenario, name, value, unit, better, switches per acquire, note, unix time, mode).
    fn contended_rows(&self) -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(self.dir.join("summary.tsv")).unwrap_or_default();
        text.lines()
            .map(|line| line.split('\t').map(str::to_owned).collect::<Vec<_>>())
            .filter(|f| f.len() > 8 && f[1].starts_with("contended "))
            .collect()
    }

    fn json(&self, relative: &str) -> Option<Value> {
        serde_json::from_str(&std::fs::read_to_string(self.dir.join(relative)).ok()?).ok()
    }

    /// The wait-tail row of `imp`.
    fn tail(&self, imp: &str) -> Option<Value> {
        let json = self.json("wait_tail/latency.json")?;
        json["results"].as_array()?.iter().find(|r| r["name"] == imp).cloned()
    }

    /// The syscall row of `imp` in `scenario`: (futex calls, ns per operation).
    fn syscalls(&self, scenario: &str, imp: &str) -> Option<(u64, f64)> {
        let json = self.json("syscalls/futex.json")?;
        let row = json.as_array()?.iter().find(|r| r["scenario"] == scenario && r["name"] == imp)?;
        Some((row["futex_calls"].as_u64()?, row["ns_per_op"].as_f64()?))
    }
}

fn main() {
    // The workspace root: this crate is `tools/bench-report`.
    let root = &Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = &root.canonicalize().unwrap_or_else(|_| root.clone());
    let dir = if let Some(home) = std::env::var_os("CRITERION_HOME") {
        PathBuf::from(home)
    } else if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        PathBuf::from(target).join("criterion")
    } else {
        root.join("target/criterion")
    };
    let data = Data { dir };
    if data.est("uncontended", "acquire_release", OURS).is_none() {
        eprintln!("bench-report: no results under {}: run `cargo bench` first", data.dir.display());
        std::process::exit(1);
    }

    let (oldest, newest) = data.span();
    if newest.saturating_sub(oldest) > ONE_RUN_SECS {
        eprintln!(
            "bench-report: the results under {} come from runs between {} and {} (a partial run after \
             the last full one); the report says so, and `cargo bench` gives one run's figures",
            data.dir.display(),
            date(oldest),
            date(newest)
        );
    }
    let svg = chart(&data);
    let svg_path = root.join("docs/benchmarks.svg");
    std::fs::write(&svg_path, svg).expect("write docs/benchmarks.svg");
    println!("bench-report: wrote {}", svg_path.display());

    let results = markdown(&data);
    let md_path = root.join("docs/benchmarks.md");
    let (begin, end) = ("<!-- results:begin -->\n", "<!-- results:end -->");
    let doc = std::fs::read_to_string(&md_path).unwrap_or_default();
    match (doc.find(begin), doc.find(end)) {
        (Some(b), Some(e)) if b < e => {
            let doc = format!("{}{begin}{results}{}", &doc[..b], &doc[e..]);
            std::fs::write(&md_path, doc).expect("write docs/benchmarks.md");
            println!("bench-report: updated the results section of {}", md_path.display());
        }
        _ => print!("{results}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Markdown

fn ns(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1} µs", v / 1000.0)
    } else if v >= 1000.0 {
        format!("{:.2} µs", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0} ns")
    } else {
        format!("{v:.2} ns")
    }
}

fn us(v: &Value) -> String {
    v.as_f64().map_or("-".into(), |v| format!("{:.2}", v / 1000.0))
}

fn ratio(a: f64, b: f64) -> String {
    format!("{:.2}×", a / b)
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

fn markdown(data: &Data) -> String {
    use Align::{Left as L, Right as R};
    let dashes = || vec!["-".to_owned(); 3];
    let mut md = String::new();
    let _ = writeln!(md, "{}\n", machine(data));

    // Uncontended.
    let _ = writeln!(
        md,
        "### Uncontended: one thread, time per pair (lower is better)\n\n\
         `÷ floor`: how many times the floor's time; `÷ ours`: how many times futex-semaphore's \
         time (above 1: futex-semaphore is faster).\n"
    );
    let floor = ["acquire_release", "try_acquire_release"].map(|f| data.est("uncontended", f, FLOOR));
    let ours = ["acquire_release", "try_acquire_release"].map(|f| data.est("uncontended", f, OURS));
    let mut t = Table::new(&[
        ("implementation", L),
        ("acquire + release", R),
        ("÷ floor", R),
        ("÷ ours", R),
        ("try_acquire + release", R),
        ("÷ floor", R),
        ("÷ ours", R),
    ]);
    for imp in std::iter::once(FLOOR).chain(IMPLS) {
        let mut row = vec![imp.to_owned()];
        for (i, function) in ["acquire_release", "try_acquire_release"].into_iter().enumerate() {
            row.extend(match (data.est("uncontended", function, imp), floor[i], ours[i]) {
                (Some(e), Some(f), Some(o)) => vec![ns(e.ns), ratio(e.ns, f.ns), ratio(e.ns, o.ns)],
                _ => dashes(),
            });
        }
        t.row(row);
    }
    md.push_str(&t.markdown());

    // Contended.
    let _ = writeln!(
        md,
        "\n### Contended: T threads on P permits, million pairs per second (higher is better)\n\n\
         Each shape is `threads t - permits p` with its work units inside/outside the permit as in \
         `benches/semaphore.rs`; medians of interleaved timed runs. `ours ÷ best peer`: the throughput \
         ratio.\n"
    );
    let mut columns = vec![("shape", L)];
    columns.extend(IMPLS.map(|imp| (imp, R)));
    columns.extend([("best peer", L), ("ours ÷ best peer", R)]);
    let mut t = Table::new(&columns);
    let mut contended_ratios = Vec::new();
    for shape in SHAPES {
        let mut row = vec![shape.to_owned()];
        for imp in IMPLS {
            row.push(data.contended(shape, imp).map_or("-".into(), |e| format!("{:.2}", 1000.0 / e.ns)));
        }
        let best = PEERS
            .iter()
            .filter_map(|p| Some((*p, data.contended(shape, p)?)))
            .min_by(|a, b| a.1.ns.total_cmp(&b.1.ns));
        match (best, data.contended(shape, OURS)) {
            (Some((peer, b)), Some(o)) => {
                // Throughput ratio: the peer's time over ours.
                // Medians of timed runs: no interval to show.
                row.extend([peer.to_owned(), format!("{:.2}×", b.ns / o.ns)]);
                let floor = data.contended(shape, FLOOR).map(|f| f.ns / o.ns);
                contended_ratios.push((shape, peer, b.ns / o.ns, floor));
            }
            _ => row.extend(["-".to_owned(), "-".to_owned()]),
        }
        t.row(row);
    }
    md.push_str(&t.markdown());

    // Handoff.
    let _ = writeln!(
        md,
        "\n### Handoff: round trip of a token between two threads (lower is better)\n\n\
         `one CPU`: both threads pinned to the same CPU, as when the other core is busy.\n"
    );
    let ours_handoff = data.est("handoff", "round_trip", OURS);
    let ours_one_cpu = data.est("handoff", "round_trip_one_cpu", OURS);
    let mut t = Table::new(&[
        ("implementation", L),
        ("round trip", R),
        ("95 % interval", R),
        ("÷ ours", R),
        ("one CPU", R),
        ("95 % interval", R),
        ("÷ ours", R),
    ]);
    for imp in IMPLS {
        let mut row = vec![imp.to_owned()];
        for (function, ours) in [("round_trip", ours_handoff), ("round_trip_one_cpu", ours_one_cpu)] {
            row.extend(match (data.est("handoff", function, imp), ours) {
                (Some(e), Some(o)) => {
                    vec![ns(e.ns), format!("{} – {}", ns(e.lo), ns(e.hi)), ratio(e.ns, o.ns)]
                }
                _ => dashes(),
            });
        }
        t.row(row);
    }
    md.push_str(&t.markdown());

    // Wait tail.
    if let Some(json) = data.json("wait_tail/latency.json") {
        let _ = writeln!(
            md,
            "\n### Wait tail: {} threads, 1 permit, hold {} work units, {} acquires per thread\n\n\
             Time from calling `acquire` to holding the permit, in µs (lower is better).\n",
            json["threads"], json["hold_units"], json["acquires_per_thread"]
        );
        let mut t = Table::new(&[
            ("implementation", L),
            ("p50", R),
            ("p90", R),
            ("p99", R),
            ("p99.9", R),
            ("max", R),
            ("mean", R),
            ("M acquires/s", R),
        ]);
        for imp in IMPLS {
            if let Some(r) = data.tail(imp) {
                let mut row = vec![imp.to_owned()];
                row.extend(["p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns", "mean_ns"].map(|k| us(&r[k])));
                row.push(format!("{:.2}", r["rate_per_s"].as_f64().map_or(f64::NAN, |r| r / 1e6)));
                t.row(row);
            }
        }
        md.push_str(&t.markdown());
    }

    // System calls.
    if data.json("syscalls/futex.json").is_some() {
        let _ = writeln!(
            md,
            "\n### futex system calls (`strace -f -c -e trace=futex`)\n\n\
             Calls in the whole run, and the time per operation of the same run without strace. \
             uncontended: 1,000,000 pairs on one thread; contended: 8 threads on 2 permits, 5,000 \
             pairs each; handoff: 5,000 round trips, on two CPUs and pinned to one. `harness`: the \
             same run through a gate that does nothing (spawning, the start barrier, joining).\n"
        );
        let mut t = Table::new(&[
            ("implementation", L),
            ("uncontended calls", R),
            ("ns per pair", R),
            ("contended calls", R),
            ("ns per pair", R),
            ("handoff calls", R),
            ("ns per round trip", R),
            ("handoff, one CPU: calls", R),
            ("ns per round trip", R),
        ]);
        for imp in ["harness", FLOOR].into_iter().chain(IMPLS) {
            let mut row = vec![imp.to_owned()];
            for scenario in ["uncontended", "contended", "handoff", "handoff-1cpu"] {
                row.extend(match data.syscalls(scenario, imp) {
                    Some((calls, per_op)) => [calls.to_string(), format!("{per_op:.1}")],
                    None => ["-".to_owned(), "-".to_owned()],
                });
            }
            t.row(row);
        }
        md.push_str(&t.markdown());
    }

    // Targets.
    md.push_str("\n### Targets\n\n");
    let mut t = Table::new(&[("target", L), ("figure", L), ("verdict", L)]);
    let mut target = |what: String, figure: String, met: bool| t.row(vec![what, figure, verdict(met).into()]);
    if let (Some(o), Some(f)) = (ours[0], floor[0]) {
        let r = o.ns / f.ns;
        target(
            "uncontended ≤ 1.25× the floor".into(),
            format!("{r:.2}× ({} vs {})", ns(o.ns), ns(f.ns)),
            r <= 1.25,
        );
    }
    for (peer, want) in [("sem_t", 1.4), ("parking_lot", 2.0), ("std", 8.0)] {
        if let (Some(o), Some(p)) = (ours[0], data.est("uncontended", "acquire_release", peer)) {
            let r = p.ns / o.ns;
            target(
                format!("uncontended ≥ {want}× faster than {peer}"),
                format!("{r:.2}× ({} vs {})", ns(o.ns), ns(p.ns)),
                r >= want,
            );
        }
    }
    // Issue 14's rule: 1.2× the best peer, or 0.9× the floor where that is less (the floor, the
    // cores' limit, caps what any semaphore can reach).
    for (shape, peer, r, floor) in contended_ratios {
        let (figure, met) = match floor {
            Some(f) => (format!("{r:.2}× {peer}, {f:.2}× the floor"), r >= 1.2 || f >= 0.9),
            None => (format!("{r:.2}× {peer}"), r >= 1.2),
        };
        target(format!("contended {shape} ≥ 1.2× the best peer or ≥ 0.9× the floor"), figure, met);
    }
    for (what, ours, function) in [
        ("handoff round trip no slower than sem_t", ours_handoff, "round_trip"),
        ("(same, both threads on one CPU)", ours_one_cpu, "round_trip_one_cpu"),
    ] {
        if let (Some(o), Some(s)) = (ours, data.est("handoff", function, "sem_t")) {
            target(what.into(), format!("{} vs {} ({:.2}×)", ns(o.ns), ns(s.ns), o.ns / s.ns), o.ns <= s.ns);
        }
    }
    if let Some(max) = data.tail(OURS).and_then(|r| r["max_ns"].as_f64()) {
        target(
            "wait tail bounded: max ≤ 5 ms (4 threads, 1 permit)".into(),
            format!("max {:.2} ms", max / 1e6),
            max <= 5e6,
        );
    }
    if let Some((calls, _)) = data.syscalls("uncontended", OURS) {
        target(
            "zero futex calls uncontended".into(),
            format!("{calls} calls in 1,000,000 pairs"),
            calls == 0,
        );
    }
    md.push_str(&t.markdown());
    md.push('\n');
    md
}

/// One line on the machine and the time of the run.
fn machine(data: &Data) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("model name"))?.split(':').nth(1).map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let rustc = std::process::Command::new("rustc")
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let (oldest, newest) = data.span();
    let when = if newest.saturating_sub(oldest) <= ONE_RUN_SECS {
        format!("Run of {}", date(oldest))
    } else {
        format!(
            "**Figures from runs between {} and {}** (a partial `cargo bench` came after the last full \
             one, so the tables below mix runs; `cargo bench` again gives one run's figures),",
            date(oldest),
            date(newest)
        )
    };
    format!("{when} on {cpu}, {cores} cores (shared with other jobs), Linux {}, {rustc}.", kernel.trim())
}

/// The most a full `cargo bench` takes on the project's machine, with margin: files of the report
/// written further apart than this come from different runs.
const ONE_RUN_SECS: u64 = 20 * 60;

impl Data {
    /// When the files this report reads were written, oldest and newest, in seconds since the
    /// Unix epoch: criterion's estimates of the uncontended and handoff groups, the wait-tail and
    /// syscall files (their modification times), and the contended rows of `summary.tsv` (their
    /// `unix_time`).
    fn span(&self) -> (u64, u64) {
        let mtime = |path: &Path| {
            let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
            Some(modified.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs())
        };
        let mut times = Vec::new();
        for (group, functions) in [
            ("uncontended", &["acquire_release", "try_acquire_release"][..]),
            ("handoff", &["round_trip", "round_trip_one_cpu"][..]),
        ] {
            for function in functions {
                for imp in IMPLS {
                    let estimates = self.dir.join(group).join(function).join(imp).join("new/estimates.json");
                    times.extend(mtime(&estimates));
                }
            }
        }
        times.extend(mtime(&self.dir.join("wait_tail/latency.json")));
        times.extend(mtime(&self.dir.join("syscalls/futex.json")));
        times.extend(self.contended_rows().iter().filter_map(|f| f[8].parse::<u64>().ok()));
        (times.iter().copied().min().unwrap_or(0), times.iter().copied().max().unwrap_or(0))
    }
}

/// `YYYY-MM-DD HH:MM UTC` for seconds since the Unix epoch.
fn date(secs: u64) -> String {
    let t = civil::Utc::from_unix(secs);
    format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", t.year, t.month, t.day, t.hour, t.minute)
}

// ---------------------------------------------------------------------------------------------
// SVG

fn color(imp: &str) -> &'static str {
    match imp {
        "futex-semaphore" => "#d62728",
        "std" => "#7f7f7f",
        "parking_lot" => "#1f77b4",
        "sem_t" => "#2ca02c",
        "tokio" => "#9467bd",
        "async-lock" => "#ff7f0e",
        _ => "#222222",
    }
}

/// One block of bars: a title and, per implementation, its cost in ns (absent ones are left out).
struct Block {
    title: String,
    unit: &'static str,
    bars: Vec<(&'static str, f64)>,
}

fn blocks(data: &Data) -> Vec<Block> {
    let mut blocks = Vec::new();
    for (function, title) in [
        ("acquire_release", "uncontended: acquire + release"),
        ("try_acquire_release", "uncontended: try_acquire + release"),
    ] {
        let bars = std::iter::once(FLOOR)
            .chain(IMPLS)
            .filter_map(|imp| Some((imp, data.est("uncontended", function, imp)?.ns)))
            .collect();
        blocks.push(Block { title: title.into(), unit: "per pair", bars });
    }
    for shape in SHAPES {
        let bars = IMPLS.iter().filter_map(|imp| Some((*imp, data.contended(shape, imp)?.ns))).collect();
        let (t, p) = shape.split_once("t-").unwrap_or((shape, ""));
        let p = p.trim_end_matches('p');
        let permits = if p == "1" { "1 permit".to_owned() } else { format!("{p} permits") };
        blocks.push(Block { title: format!("contended: {t} threads, {permits}"), unit: "per pair", bars });
    }
    let bars =
        IMPLS.iter().filter_map(|imp| Some((*imp, data.est("handoff", "round_trip", imp)?.ns))).collect();
    blocks.push(Block { title: "handoff: round trip".into(), unit: "per round trip", bars });
    let bars = IMPLS
        .iter()
        .filter_map(|imp| Some((*imp, data.est("handoff", "round_trip_one_cpu", imp)?.ns)))
        .collect();
    blocks.push(Block {
        title: "handoff: round trip, both threads on one CPU".into(),
        unit: "per round trip",
        bars,
    });
    let bars = IMPLS.iter().filter_map(|imp| Some((*imp, data.tail(imp)?["p99_ns"].as_f64()?))).collect();
    blocks.push(Block { title: "wait tail: p99 wait, 4 threads on 1 permit".into(), unit: "p99", bars });
    blocks.retain(|b| b.bars.iter().any(|(imp, _)| *imp == OURS));
    blocks
}

fn chart(data: &Data) -> String {
    let blocks = blocks(data);
    let (width, label_w, right_pad) = (960.0, 150.0, 150.0);
    let (bar_h, gap, title_h, top, axis_h) = (13.0, 3.0, 22.0, 70.0, 40.0);
    let plot_w = width - label_w - right_pad;

    // Ratios to futex-semaphore, on a log axis that covers all of them.
    let ratios: Vec<f64> = blocks
        .iter()
        .flat_map(|b| {
            let ours = b.bars.iter().find(|(i, _)| *i == OURS).map_or(1.0, |x| x.1);
            b.bars.iter().map(move |(_, v)| v / ours)
        })
        .collect();
    let ticks =
        [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];
    let lo = ticks
        .iter()
        .rev()
        .copied()
        .find(|t| *t <= ratios.iter().copied().fold(1.0, f64::min))
        .unwrap_or(0.01);
    let hi =
        ticks.iter().copied().find(|t| *t >= ratios.iter().copied().fold(1.0, f64::max)).unwrap_or(1000.0);
    let x = |r: f64| label_w + (r.log10() - lo.log10()) / (hi.log10() - lo.log10()) * plot_w;

    let height = top
        + blocks.iter().map(|b| title_h + b.bars.len() as f64 * (bar_h + gap) + 8.0).sum::<f64>()
        + axis_h;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="11">"##
    );
    let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="white"/>"##);
    let _ = writeln!(
        s,
        r##"<text x="{}" y="22" font-size="15" font-weight="bold">Cost relative to futex-semaphore (log scale; left of the red line is faster)</text>"##,
        10
    );
    let _ = writeln!(
        s,
        r##"<text x="10" y="40" fill="#555">Each bar: that implementation's time ÷ futex-semaphore's in the same run (contended: time per pair, i.e. 1 / throughput). Labels: ratio and absolute figure.</text>"##
    );
    let _ = writeln!(s, r##"<text x="10" y="56" fill="#555">{}</text>"##, escape(&machine(data)));

    let plot_bottom = height - axis_h;
    for t in ticks.iter().copied().filter(|t| *t >= lo && *t <= hi) {
        let (stroke, w) = if t == 1.0 { ("#d62728", 1.5) } else { ("#dddddd", 1.0) };
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" y1="{top}" x2="{0:.1}" y2="{plot_bottom}" stroke="{stroke}" stroke-width="{w}"/>"##,
            x(t)
        );
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{}" text-anchor="middle" fill="#333">{}×</text>"##,
            x(t),
            plot_bottom + 16.0,
            t
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{}" text-anchor="middle" fill="#333">time ÷ futex-semaphore's time</text>"##,
        label_w + plot_w / 2.0,
        plot_bottom + 32.0
    );

    let mut y = top;
    for b in &blocks {
        let ours = b.bars.iter().find(|(i, _)| *i == OURS).map_or(1.0, |x| x.1);
        let _ = writeln!(
            s,
            r##"<text x="10" y="{:.1}" font-weight="bold">{}</text>"##,
            y + 15.0,
            escape(&b.title)
        );
        y += title_h;
        for (imp, v) in &b.bars {
            let r = v / ours;
            let (x0, x1) = (x(1.0), x(r));
            let (left, w) = if x1 >= x0 { (x0, (x1 - x0).max(1.5)) } else { (x1, x0 - x1) };
            let _ = writeln!(
                s,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#333">{imp}</text>"##,
                label_w - 6.0,
                y + bar_h - 2.5
            );
            let _ = writeln!(
                s,
                r##"<rect x="{left:.1}" y="{y:.1}" width="{w:.1}" height="{bar_h}" fill="{}"/>"##,
                color(imp)
            );
            // The label goes right of the bar, or right of the red line for a bar left of it.
            let label_x = if x1 >= x0 { left + w + 4.0 } else { x0 + 4.0 };
            let _ = writeln!(
                s,
                r##"<text x="{:.1}" y="{:.1}" fill="#333">{:.2}× · {} {}</text>"##,
                label_x,
                y + bar_h - 2.5,
                r,
                ns(*v),
                b.unit
            );
            y += bar_h + gap;
        }
        y += 8.0;
    }
    s.push_str("</svg>\n");
    s
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::time::{Duration, SystemTime};

    /// A criterion directory with three of the report's files written `at` seconds after a base
    /// time, and, if `contended_at` is given, a contended row of `summary.tsv` recorded then.
    fn written_at(name: &str, at: [u64; 3], contended_at: Option<u64>) -> Data {
        let dir = std::env::temp_dir().join(format!("bench-report-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let base = 1_796_000_000;
        let files = [
            "uncontended/acquire_release/futex-semaphore/new/estimates.json",
            "wait_tail/latency.json",
            "syscalls/futex.json",
        ];
        for (file, secs) in files.iter().zip(at) {
            let path = dir.join(file);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            let f = fs::File::create(&path).unwrap();
            f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(base + secs)).unwrap();
        }
        if let Some(secs) = contended_at {
            let row = format!(
                "semaphore\tcontended 2t-1p 50/50\tfutex-semaphore\t9.5\tMpairs/s\thigher\t0\t\t{}\tfull\n",
                base + secs
            );
            fs::write(dir.join("summary.tsv"), row).unwrap();
        }
        Data { dir }
    }

    #[test]
    fn one_run_is_named_and_mixed_runs_are_flagged() {
        let one = written_at("one", [0, 60, 240], Some(120));
        assert_eq!(one.span(), (1_796_000_000, 1_796_000_240));
        let line = machine(&one);
        assert!(line.starts_with("Run of "), "{line}");

        let later_file = written_at("file", [0, 60, ONE_RUN_SECS + 61], None);
        let line = machine(&later_file);
        assert!(line.starts_with("**Figures from runs between"), "a file of a later run: {line}");

        let later_row = written_at("row", [0, 60, 120], Some(3600));
        let line = machine(&later_row);
        assert!(line.starts_with("**Figures from runs between"), "a summary row of a later run: {line}");
        for data in [one, later_file, later_row] {
            let _ = fs::remove_dir_all(&data.dir);
        }
    }
}
