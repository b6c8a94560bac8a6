//! The performance benchmark (docs/performance.md). Generates deterministic warehouses with levered's
//! own generator and measures, each as the median of fresh rounds:
//!   A  `levered train --full` of the `bench` optimization;
//!   B  the bare aggregation: the SQL levered generates, run on the same embedded engine;
//!   P  an independent plain-DuckDB formulation of the same aggregation (joins, no levered code);
//!   C  an hourly incremental run once the state holds everything but the last hour;
//!   Q  the bare aggregation of that hourly run (C without levered's fixed costs);
//! the peak resident memory of each, the parts A's scan ran in (docs/design.md §2.14), the model
//! step alone (P(best) and intervals for 1,000 contexts × 20 arms, one core), and how A grows with
//! the warehouse. P holds all the units in memory (~3 GiB at 10M exposures),
//! so it runs only up to `--plain-up-to` exposures (30M by default).
//!
//! cargo run --release --locked --example bench -- [--sizes 1000000,3000000,10000000] [--rounds 5]
//!                                                  [--dir /tmp/levered-bench] [--memory-limit 1GB]
//!                                                  [--plain-up-to 30000000]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use levered::model::{compare, Method, Posterior};
use rand::{RngExt, SeedableRng};

const END: &str = "2026-01-31T00:00:00Z";
const DAYS: u32 = 30;

struct Args {
    sizes: Vec<u64>,
    rounds: usize,
    dir: PathBuf,
    memory_limit: Option<String>,
    plain_up_to: u64,
}

fn parse_args() -> Args {
    let mut args = Args {
        sizes: vec![1_000_000, 3_000_000, 10_000_000],
        rounds: 5,
        dir: std::env::temp_dir().join("levered-bench"),
        memory_limit: None,
        plain_up_to: 30_000_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--sizes" => {
                args.sizes = value
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse().expect("a size"))
                    .collect()
            }
            "--rounds" => args.rounds = value.parse().expect("a number of rounds"),
            "--dir" => args.dir = PathBuf::from(value),
            "--memory-limit" => args.memory_limit = Some(value),
            "--plain-up-to" => args.plain_up_to = value.parse().expect("a number of exposures"),
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

fn end_us() -> i64 {
    chrono::DateTime::parse_from_rfc3339(END)
        .unwrap()
        .timestamp_micros()
}

fn definitions(warehouse: &Path, memory_limit: Option<&str>) -> String {
    let limit = memory_limit.map_or(String::new(), |m| format!(", memory_limit: {m}"));
    format!(
        "warehouse: {{path: {}{limit}}}
state: state/state.duckdb
output_dir: out
metrics:
  signup:
    type: bool
    sql: SELECT anonymous_id, created_at AS timestamp FROM signups WHERE created_at >= $start AND created_at < $end
optimizations:
  bench:
    status: live
    design_factors: {{arm: [a0, a1, a2, a3, a4, a5, a6, a7, a8, a9]}}
    reward: signup
    exposures: {{table: exposures}}
    attribution: {{type: last_touch, conversion_window: 24h}}
    model: {{kind: mab, batch: 1h, holdout: {{share: 0.1}}, seed: 1}}
",
        warehouse.display()
    )
}

/// The independent formulation: a plain reading of the aggregation with joins.
const PLAIN: &str = "
WITH e AS (
    SELECT anonymous_id, timestamp AS ts, variant, coalesce(holdout, false) AS holdout,
           time_bucket(INTERVAL 1 hour, timestamp) AS batch
    FROM exposures
    WHERE optimization_id = 'bench' AND anonymous_id IS NOT NULL AND timestamp < TIMESTAMP '2026-01-31 00:00:00'
),
v AS MATERIALIZED (SELECT variant, json_extract_string(variant, '$.arm') AS arm FROM (SELECT DISTINCT variant FROM e)),
u AS (
    SELECT e.anonymous_id, e.ts, e.batch, e.holdout, v.arm FROM e JOIN v USING (variant)
    WHERE v.arm IN ('a0', 'a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7', 'a8', 'a9')
    QUALIFY row_number() OVER (PARTITION BY e.anonymous_id, e.batch ORDER BY e.ts) = 1
),
r AS (SELECT DISTINCT anonymous_id, created_at AS rt FROM signups WHERE created_at < TIMESTAMP '2026-01-31 00:00:00'),
m AS (
    SELECT r.anonymous_id, max(u.ts) AS unit_ts
    FROM r JOIN u ON r.anonymous_id = u.anonymous_id AND u.ts <= r.rt AND r.rt <= u.ts + INTERVAL 24 hour
    GROUP BY r.anonymous_id, r.rt
),
c AS (SELECT DISTINCT anonymous_id, unit_ts FROM m)
SELECT u.batch, u.arm, u.holdout, count(*) AS units, count(c.unit_ts) AS conversions
FROM u LEFT JOIN c ON c.anonymous_id = u.anonymous_id AND c.unit_ts = u.ts
WHERE u.ts + INTERVAL 24 hour <= TIMESTAMP '2026-01-31 00:00:00'
GROUP BY ALL";

/// Runs one phase in this process (called as a child, so that its peak memory is its own).
fn phase(name: &str, dir: &Path) -> (i64, i64) {
    let config = levered::config::load(&dir.join("bench.yaml")).expect("bench definitions");
    match name {
        "bare" | "bare-hourly" => {
            let optimization = &config.optimizations["bench"];
            let engine = levered::warehouse::open(&config.warehouse).expect("the warehouse");
            let arms = optimization.numbered_variants();
            // The hourly run's scan starts where the run an hour earlier left its final batches.
            let end = levered::time::Instant::from_micros(end_us());
            let hour = levered::time::Span::from_seconds(3_600);
            let from_batch = (name == "bare-hourly")
                .then(|| levered::warehouse::final_until(optimization, end - hour));
            let plan = levered::warehouse::ScanPlan {
                optimization,
                arms,
                as_of: end,
                from_batch,
            };
            let scan = engine.aggregate(&plan).expect("the aggregation");
            (
                scan.rows.iter().map(|r| r.units).sum(),
                scan.rows.iter().map(|r| r.conversions).sum(),
            )
        }
        "plain" => {
            let connection = duckdb::Connection::open_in_memory().unwrap();
            let folder = match &config.warehouse.source {
                levered::config::WarehouseSource::ParquetFolder(f) => f.clone(),
                other => panic!("{other:?}"),
            };
            if let Some(limit) = &config.warehouse.memory_limit {
                connection
                    .execute_batch(&format!("SET memory_limit = '{limit}'"))
                    .unwrap();
            }
            for table in ["exposures", "signups"] {
                let path = folder.join(format!("{table}.parquet"));
                connection
                    .execute_batch(&format!(
                        "CREATE VIEW {table} AS SELECT * FROM read_parquet('{}')",
                        path.display()
                    ))
                    .unwrap();
            }
            let mut statement = connection.prepare(PLAIN).unwrap();
            let rows = statement
                .query_map([], |row| Ok((row.get::<_, i64>(3)?, row.get::<_, i64>(4)?)))
                .unwrap();
            rows.map(Result::unwrap)
                .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
        }
        other => panic!("unknown phase {other}"),
    }
}

/// Wall seconds and peak resident KiB of a child process.
#[expect(
    clippy::zombie_processes,
    reason = "the child is reaped by wait4, which also reads its rusage"
)]
fn measure(command: &mut Command) -> (f64, i64) {
    let started = Instant::now();
    let child = command.spawn().expect("the child starts");
    let mut status = 0;
    // SAFETY: wait4 on the pid of a child this process spawned; rusage is a plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert!(pid > 0 && status == 0, "the child failed ({status})");
    (started.elapsed().as_secs_f64(), usage.ru_maxrss)
}

fn me(dir: &Path) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.env("LEVERED_BENCH_DIR", dir);
    command
}

fn train(dir: &Path, as_of: &str, full: bool) -> Command {
    let mut command = me(dir);
    command
        .env("LEVERED_BENCH_PHASE", "train")
        .args(["train", "--all", "-q", "--config"]);
    command.arg(dir.join("bench.yaml")).args(["--as-of", as_of]);
    if full {
        command.arg("--full");
    }
    command
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

struct Figures {
    size: u64,
    a: (f64, f64),
    b: (f64, f64),
    p: (f64, f64),
    c: (f64, f64),
    q: (f64, f64),
    /// The parts of A's scan.
    parts: u64,
}

/// The parts the scan of the newest run in `dir` ran in, from its run.json.
fn scan_parts(dir: &Path) -> u64 {
    let runs = dir.join("out/bench/runs");
    let newest = std::fs::read_dir(&runs)
        .expect("the runs folder")
        .map(|entry| entry.unwrap().path())
        .max()
        .expect("a run");
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(newest.join("run.json")).unwrap()).unwrap();
    run["scan"]["parts"].as_u64().expect("the scan's parts")
}

fn run_size(args: &Args, size: u64) -> Figures {
    // The warehouse's layout version is part of the folder's name, so an older one is not reused.
    let dir = args.dir.join(format!("v2-{size}"));
    let warehouse = dir.join("warehouse");
    if !warehouse.join("signups.parquet").exists() {
        // In a child: a child's peak RSS starts from its parent's, which must stay small.
        let (seconds, _) = measure(
            me(&dir)
                .env("LEVERED_BENCH_PHASE", "generate")
                .env("LEVERED_BENCH_SIZE", size.to_string()),
        );
        eprintln!("  generated in {seconds:.1} s");
    }
    std::fs::write(
        dir.join("bench.yaml"),
        definitions(&warehouse, args.memory_limit.as_deref()),
    )
    .unwrap();
    let fresh = || {
        let _ = std::fs::remove_dir_all(dir.join("state"));
        let _ = std::fs::remove_dir_all(dir.join("out"));
    };
    let (mut a, mut b, mut p, mut c, mut q) = (vec![], vec![], vec![], vec![], vec![]);
    let (mut a_rss, mut b_rss, mut p_rss, mut c_rss, mut q_rss) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut parts = 0;
    for _ in 0..args.rounds {
        fresh();
        let (t, rss) = measure(&mut train(&dir, END, true));
        a.push(t);
        a_rss.push(rss as f64);
        parts = scan_parts(&dir);
        let (t, rss) = measure(me(&dir).env("LEVERED_BENCH_PHASE", "bare"));
        b.push(t);
        b_rss.push(rss as f64);
        let (t, rss) = if size <= args.plain_up_to {
            measure(me(&dir).env("LEVERED_BENCH_PHASE", "plain"))
        } else {
            (f64::NAN, 0)
        };
        p.push(t);
        p_rss.push(rss as f64);
        fresh();
        measure(&mut train(&dir, "2026-01-30T23:00:00Z", true));
        let (t, rss) = measure(&mut train(&dir, END, false));
        c.push(t);
        c_rss.push(rss as f64);
        let (t, rss) = measure(me(&dir).env("LEVERED_BENCH_PHASE", "bare-hourly"));
        q.push(t);
        q_rss.push(rss as f64);
    }
    let mib = |v: Vec<f64>| median(v) / 1024.0;
    Figures {
        size,
        a: (median(a), mib(a_rss)),
        b: (median(b), mib(b_rss)),
        p: (median(p), mib(p_rss)),
        c: (median(c), mib(c_rss)),
        q: (median(q), mib(q_rss)),
        parts,
    }
}

/// Seconds for P(best) with expected loss, and for 95% intervals, of `contexts` × `arms` Beta
/// posteriors, on this thread.
fn model_step(contexts: usize, arms: usize) -> (f64, f64) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let cells: Vec<Vec<Posterior>> = (0..contexts)
        .map(|_| {
            (0..arms)
                .map(|_| {
                    let n = rng.random_range(200.0..20_000.0f64);
                    let rate = rng.random_range(0.02..0.06f64);
                    Posterior::Beta {
                        alpha: 1.0 + (n * rate).round(),
                        beta: 1.0 + (n * (1.0 - rate)).round(),
                    }
                })
                .collect()
        })
        .collect();
    let started = Instant::now();
    for (i, cell) in cells.iter().enumerate() {
        let result = compare(cell, i as u64);
        assert_eq!(result.method, Method::Quadrature);
        let total: f64 = result.p_best.iter().sum();
        assert!((total - 1.0).abs() < 1e-8, "{total}");
    }
    let p_best = started.elapsed().as_secs_f64();
    let started = Instant::now();
    for posterior in cells.iter().flatten() {
        std::hint::black_box(posterior.interval(0.95));
    }
    (p_best, started.elapsed().as_secs_f64())
}

fn main() {
    if let Ok(name) = std::env::var("LEVERED_BENCH_PHASE") {
        let dir = PathBuf::from(std::env::var("LEVERED_BENCH_DIR").unwrap());
        if name == "generate" {
            let size = std::env::var("LEVERED_BENCH_SIZE")
                .unwrap()
                .parse()
                .unwrap();
            let summary = levered::synth::write_bench_warehouse(
                &dir.join("warehouse"),
                size,
                DAYS,
                end_us(),
                2026,
            )
            .expect("the warehouse");
            eprintln!("{summary}");
            return;
        }
        if name == "train" {
            let mut argv = vec!["levered".to_string()];
            argv.extend(std::env::args().skip(1));
            std::process::exit(levered::run(argv).code());
        }
        let (units, conversions) = phase(&name, &dir);
        eprintln!("  {name}: {units} mature units, {conversions} conversions");
        return;
    }
    let args = parse_args();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "levered benchmark: {cores} cores, medians of {} rounds, memory_limit {}",
        args.rounds,
        args.memory_limit.as_deref().unwrap_or("default")
    );
    println!(
        "{:>11} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>6} {:>6} {:>6} {:>6} {:>7} {:>7} {:>7} {:>7} {:>5}",
        "exposures", "A s", "B s", "P s", "C s", "Q s", "A/B", "A/P", "C/A", "C/B", "Q/B",
        "A MiB", "B MiB", "P MiB", "C MiB", "parts"
    );
    let mut all = Vec::new();
    for &size in &args.sizes {
        let f = run_size(&args, size);
        println!(
            "{:>11} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>7.0} {:>7.0} {:>7.0} {:>7.0} {:>5}",
            f.size, f.a.0, f.b.0, f.p.0, f.c.0, f.q.0,
            f.a.0 / f.b.0, f.a.0 / f.p.0, f.c.0 / f.a.0, f.c.0 / f.b.0, f.q.0 / f.b.0,
            f.a.1, f.b.1, f.p.1, f.c.1, f.parts
        );
        all.push(f);
    }
    if all.len() >= 2 {
        // Least-squares slope of ln(A) against ln(size).
        let points: Vec<(f64, f64)> = all
            .iter()
            .map(|f| ((f.size as f64).ln(), f.a.0.ln()))
            .collect();
        let n = points.len() as f64;
        let (mx, my) = (
            points.iter().map(|p| p.0).sum::<f64>() / n,
            points.iter().map(|p| p.1).sum::<f64>() / n,
        );
        let slope = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>()
            / points.iter().map(|p| (p.0 - mx).powi(2)).sum::<f64>();
        println!(
            "growth of A from {} to {} exposures: exponent {slope:.3}",
            all[0].size,
            all[all.len() - 1].size
        );
    }
    let (p_best, intervals) = model_step(1_000, 20);
    println!(
        "model step, 1,000 contexts x 20 arms, one thread: P(best) and expected loss {p_best:.3} s, 95% intervals {intervals:.3} s, together {:.3} s",
        p_best + intervals
    );
}
