//! The run mode (full, quick, smoke), the command line, and the summary every bench target adds to
//! and `benches/zz_summary.rs` prints at the end of `cargo bench`.
//!
//! Each bench target records its rows in `target/criterion/summary.tsv` (one row per scenario and
//! implementation, replaced when measured again, so a `cargo bench --bench semaphore` updates its
//! own rows and keeps the others, whose `run` column then shows that they are older), prints its
//! own part of the summary when it ends, and `zz_summary` (the last target Cargo runs: targets run
//! in name order) prints all of it.

use super::table::{Align, Table};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The environment variable that selects the quick mode: short runs, fewer rounds. The figures
/// then only show that everything runs and roughly where it stands.
pub const QUICK_VAR: &str = "FUTEX_SEMAPHORE_BENCH_QUICK";

/// How much to measure.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// `cargo bench`: the figures of `docs/benchmarks.md`.
    Full,
    /// `FUTEX_SEMAPHORE_BENCH_QUICK=1 cargo bench`: everything, briefly.
    Quick,
    /// `cargo test --benches` (no `--bench` argument): each workload once, tiny, nothing recorded.
    Smoke,
}

impl Mode {
    /// Picks one of three values by mode.
    pub fn pick<T>(self, full: T, quick: T, smoke: T) -> T {
        match self {
            Mode::Full => full,
            Mode::Quick => quick,
            Mode::Smoke => smoke,
        }
    }

    /// A criterion group's warm-up and measurement time: as given in full mode, short in quick.
    pub fn criterion_times(self, warm_up: Duration, measurement: Duration) -> (Duration, Duration) {
        match self {
            Mode::Full => (warm_up, measurement),
            _ => (Duration::from_millis(100), Duration::from_millis(300)),
        }
    }
}

/// The command line as Cargo passes it: `--bench` when benchmarking, then criterion's flags and an
/// optional filter (the first argument that is not a flag or a flag's value).
pub struct Args {
    pub mode: Mode,
    filter: Option<String>,
}

/// Criterion's flags that take a value (the filter is the first other non-flag argument).
const FLAGS_WITH_VALUE: [&str; 17] = [
    "--warm-up-time",
    "--measurement-time",
    "--sample-size",
    "--save-baseline",
    "--baseline",
    "--baseline-lenient",
    "--load-baseline",
    "--color",
    "--output-format",
    "--nresamples",
    "--noise-threshold",
    "--confidence-level",
    "--significance-level",
    "--profile-time",
    "--format",
    "--plotting-backend",
    "-c",
];

impl Args {
    pub fn parse() -> Args {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut filter = None;
        let mut skip = false;
        for a in &args {
            if skip {
                skip = false;
            } else if FLAGS_WITH_VALUE.contains(&a.as_str()) {
                skip = true;
            } else if !a.starts_with('-') && filter.is_none() {
                filter = Some(a.clone());
            }
        }
        let quick = std::env::var(QUICK_VAR).is_ok_and(|v| !v.is_empty() && v != "0");
        let mode = if !args.iter().any(|a| a == "--bench") {
            Mode::Smoke
        } else if quick {
            Mode::Quick
        } else {
            Mode::Full
        };
        Args { mode, filter }
    }

    /// Whether the scenario `id` (such as `contended/32t-4p`) is selected by the filter (a
    /// substring match; criterion's own groups use criterion's regex).
    pub fn selected(&self, id: &str) -> bool {
        self.filter.as_deref().is_none_or(|f| id.contains(f))
    }
}

/// Where criterion writes its reports, found the way criterion finds it: `$CRITERION_HOME`, else
/// `$CARGO_TARGET_DIR/criterion`, else `criterion/` in the target directory that holds this
/// benchmark's executable (`target/release/deps/<bench>` is three levels below it).
pub fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return home.into();
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.join("criterion")))
        .unwrap_or_else(|| "target/criterion".into())
}

/// The summary file.
pub fn summary_path() -> PathBuf {
    criterion_dir().join("summary.tsv")
}

/// The median of criterion's estimate for `group/function/value` in nanoseconds per iteration,
/// if criterion wrote it after `since` (so a benchmark the filter skipped is not reported from an
/// older run). Read from `new/estimates.json` without a JSON library: the file is criterion's own.
pub fn criterion_ns(group: &str, function: &str, value: &str, since: SystemTime) -> Option<f64> {
    let path = criterion_dir().join(group).join(function).join(value).join("new/estimates.json");
    if std::fs::metadata(&path).ok()?.modified().ok()? < since {
        return None;
    }
    let json = std::fs::read_to_string(path).ok()?;
    let median = &json[json.find("\"median\"")?..];
    let at = median.find("\"point_estimate\":")? + "\"point_estimate\":".len();
    let number: String = median[at..].chars().take_while(|c| !matches!(c, ',' | '}')).collect();
    number.trim().parse().ok()
}

/// Whether a larger or a smaller figure is better.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Better {
    Higher,
    Lower,
}

impl Better {
    fn as_str(self) -> &'static str {
        match self {
            Better::Higher => "higher",
            Better::Lower => "lower",
        }
    }
}

/// One figure: a scenario's result for one implementation.
pub struct Row {
    pub scenario: String,
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
    pub better: Better,
    /// Voluntary context switches per acquire, where measured.
    pub switches: Option<f64>,
    /// A short remark (per-thread progress, rounds that hit the cap).
    pub note: String,
}

impl Row {
    pub fn new(
        scenario: impl Into<String>,
        name: &str,
        value: f64,
        unit: &'static str,
        better: Better,
    ) -> Row {
        Row {
            scenario: scenario.into(),
            name: name.into(),
            value,
            unit,
            better,
            switches: None,
            note: String::new(),
        }
    }

    pub fn switches(mut self, per_acquire: f64) -> Row {
        self.switches = Some(per_acquire);
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Row {
        self.note = note.into();
        self
    }
}

/// Our implementation's name in every table.
pub const OURS: &str = "futex-semaphore";

/// Names that are references, not peers: the "floor" column of the summary.
pub fn is_reference(name: &str) -> bool {
    name == "floor" || name == "spin" || name.starts_with("ref:")
}

/// The rows one bench target measured; [`Report::finish`] stores and prints them.
pub struct Report {
    bench: &'static str,
    mode: Mode,
    rows: Vec<Row>,
}

impl Report {
    pub fn new(bench: &'static str, mode: Mode) -> Report {
        Report { bench, mode, rows: Vec::new() }
    }

    pub fn add(&mut self, row: Row) {
        self.rows.push(row);
    }

    /// Stores the rows in the summary file (replacing this target's rows of the same scenario and
    /// implementation) and prints this target's part of the summary. Nothing in smoke mode.
    pub fn finish(self) {
        if self.mode == Mode::Smoke || self.rows.is_empty() {
            return;
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mode = if self.mode == Mode::Quick { "quick" } else { "full" };
        let mut stored = read_summary();
        for row in &self.rows {
            let line = Stored {
                bench: self.bench.into(),
                scenario: row.scenario.clone(),
                name: row.name.clone(),
                value: row.value,
                unit: row.unit.into(),
                better: row.better,
                switches: row.switches,
                note: row.note.replace(['\t', '\n'], " "),
                time: now,
                mode: mode.into(),
            };
            match stored
                .iter_mut()
                .find(|s| s.bench == line.bench && s.scenario == line.scenario && s.name == line.name)
            {
                Some(old) => *old = line,
                None => stored.push(line),
            }
        }
        if let Err(e) = write_summary(&stored) {
            eprintln!("summary: could not write {}: {e}", summary_path().display());
        }
        let mine: Vec<&Stored> = stored.iter().filter(|s| s.bench == self.bench).collect();
        println!("\n{}", table(&format!("summary of `{}`", self.bench), &mine));
    }
}

/// One line of the summary file.
pub struct Stored {
    bench: String,
    scenario: String,
    name: String,
    value: f64,
    unit: String,
    better: Better,
    switches: Option<f64>,
    note: String,
    time: u64,
    mode: String,
}

const HEADER: &str =
    "bench\tscenario\tname\tvalue\tunit\tbetter\tswitches_per_acquire\tnote\tunix_time\tmode";

/// The rows stored so far (none if the file is missing or from another layout).
pub fn read_summary() -> Vec<Stored> {
    let Ok(text) = std::fs::read_to_string(summary_path()) else { return Vec::new() };
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return Vec::new();
    }
    lines
        .filter_map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            let [bench, scenario, name, value, unit, better, switches, note, time, mode] = f[..] else {
                return None;
            };
            Some(Stored {
                bench: bench.into(),
                scenario: scenario.into(),
                name: name.into(),
                value: value.parse().ok()?,
                unit: unit.into(),
                better: if better == "higher" { Better::Higher } else { Better::Lower },
                switches: switches.parse().ok(),
                note: note.into(),
                time: time.parse().ok()?,
                mode: mode.into(),
            })
        })
        .collect()
}

fn write_summary(rows: &[Stored]) -> std::io::Result<()> {
    let mut text = format!("{HEADER}\n");
    for r in rows {
        let switches = r.switches.map_or("-".into(), |s| format!("{s:.6}"));
        let _ = writeln!(
            text,
            "{}\t{}\t{}\t{}\t{}\t{}\t{switches}\t{}\t{}\t{}",
            r.bench,
            r.scenario,
            r.name,
            r.value,
            r.unit,
            r.better.as_str(),
            r.note,
            r.time,
            r.mode
        );
    }
    std::fs::create_dir_all(criterion_dir())?;
    std::fs::write(summary_path(), text)
}

/// The order of the bench targets in the summary.
const BENCH_ORDER: [&str; 5] = ["semaphore", "async", "fairness", "process", "syscalls"];

/// Prints the whole summary (the last thing `cargo bench` prints).
pub fn print_summary() {
    let mut rows = read_summary();
    if rows.is_empty() {
        println!("summary: nothing recorded yet in {} (run `cargo bench`)", summary_path().display());
        return;
    }
    rows.sort_by_key(|r| BENCH_ORDER.iter().position(|b| *b == r.bench).unwrap_or(BENCH_ORDER.len()));
    let all: Vec<&Stored> = rows.iter().collect();
    println!("\n{}", table("summary: futex-semaphore beside the best peer, per scenario", &all));
    println!("stored in {}; docs/benchmarks.md says how each scenario is measured", summary_path().display());
}

fn fmt_value(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else if v.abs() >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

fn fmt_switches(s: Option<f64>) -> String {
    s.map_or("-".into(), |s| format!("{s:.4}"))
}

/// UTC `MM-DD HH:MM` of a Unix time.
fn utc(secs: u64) -> String {
    let t = super::civil::Utc::from_unix(secs);
    format!("{:02}-{:02} {:02}:{:02}", t.month, t.day, t.hour, t.minute)
}

/// The side-by-side table of `rows`, one line per scenario, in the order the scenarios first
/// appear.
fn table(title: &str, rows: &[&Stored]) -> String {
    let mut scenarios: Vec<(&str, &str)> = Vec::new();
    for r in rows {
        if !scenarios.contains(&(r.bench.as_str(), r.scenario.as_str())) {
            scenarios.push((&r.bench, &r.scenario));
        }
    }
    let mut lines = Table::new(&[
        ("scenario", Align::Left),
        ("unit", Align::Right),
        ("ours", Align::Right),
        ("best peer", Align::Left),
        ("ours vs best", Align::Right),
        ("floor/ref", Align::Left),
        ("csw/acq ours", Align::Right),
        ("csw/acq peer", Align::Right),
        ("run (UTC)", Align::Right),
        ("notes (ours)", Align::Left),
    ]);
    for (bench, scenario) in scenarios {
        let these: Vec<&&Stored> =
            rows.iter().filter(|r| r.bench == bench && r.scenario == scenario).collect();
        let better = these[0].better;
        let ours = these.iter().find(|r| r.name == OURS);
        let best = these.iter().filter(|r| r.name != OURS && !is_reference(&r.name)).min_by(|a, b| {
            let (a, b) = (a.value, b.value);
            if better == Better::Higher { b.total_cmp(&a) } else { a.total_cmp(&b) }
        });
        // Every reference measured beside the scenario (contended shapes where each thread has a
        // core run both the floor and the spinning gate: the gate is what a 1-permit gate that
        // looks every spin hint reaches there, the floor what never waits).
        let references: Vec<String> = these
            .iter()
            .filter(|r| is_reference(&r.name))
            .map(|r| format!("{} {}", r.name.trim_start_matches("ref:"), fmt_value(r.value)))
            .collect();
        let ratio = match (ours, best) {
            (Some(o), Some(b)) if o.value > 0.0 && b.value > 0.0 => {
                let r = if better == Better::Higher { o.value / b.value } else { b.value / o.value };
                if r >= 0.1 { format!("{r:.2}x") } else { format!("{r:.3}x") }
            }
            _ => "-".into(),
        };
        let newest = these.iter().map(|r| r.time).max().unwrap_or(0);
        let quick = these.iter().any(|r| r.mode == "quick");
        lines.row(vec![
            scenario.into(),
            format!("{} ({})", these[0].unit, if better == Better::Higher { "higher" } else { "lower" }),
            ours.map_or("-".into(), |o| fmt_value(o.value)),
            best.map_or("-".into(), |b| format!("{} {}", b.name, fmt_value(b.value))),
            ratio,
            if references.is_empty() { "-".into() } else { references.join(", ") },
            fmt_switches(ours.and_then(|o| o.switches)),
            fmt_switches(best.and_then(|b| b.switches)),
            format!("{}{}", utc(newest), if quick { " quick" } else { "" }),
            ours.map_or(String::new(), |o| o.note.clone()),
        ]);
    }
    format!(
        "{title}\n(ours vs best: how many times better ours is than the best peer, above 1 = ours ahead; \
         csw/acq: voluntary context switches per acquire)\n{}",
        lines.text()
    )
}

/// The median of `values` (which it sorts).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The `q` quantile of sorted `values`.
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}
