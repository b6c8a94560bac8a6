//! The Spark engine against a real Spark Connect server (`scripts/spark-tests` starts one and sets
//! LEVERED_SPARK_REMOTE): the same Parquet warehouse gives the same aggregates, posteriors and
//! allocations through Spark as through the embedded DuckDB, and hourly runs on Spark equal one full
//! run. Compiled only with `--features spark`; without a server these tests fail, they never skip.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};
use levered::warehouse::{self, ScanPlan, ScanResult};

use crate::support::{read_csv, train_all, Project};

fn remote() -> String {
    std::env::var("LEVERED_SPARK_REMOTE").unwrap_or_else(|_| {
        panic!("the Spark tests need a Spark Connect server: run scripts/spark-tests (it sets LEVERED_SPARK_REMOTE)")
    })
}

const AS_OF: &str = "2026-01-08T00:00:00Z";

/// The optimizations both engines train: bool and numeric metrics, last and first touch, a
/// holdout (from exposure SQL both dialects read alike), contexts, and guardrails of both kinds.
fn definitions(warehouse: &str, state: &str) -> String {
    format!(
        r#"
warehouse: {warehouse}
state: {state}.duckdb
output_dir: out-{state}
metrics:
  signup:
    type: bool
    sql: SELECT anonymous_id, created_at AS timestamp FROM signups WHERE created_at >= $start AND created_at < $end
  revenue:
    type: numeric
    sql: SELECT anonymous_id, ordered_at AS timestamp, revenue AS value FROM orders WHERE ordered_at >= $start AND ordered_at < $end
optimizations:
  hero:
    status: live
    design_factors:
      headline: [Ship faster, Built for teams, Save hours, Own your data, Open source]
      cta_text: [Start free, Book a demo]
    reward: signup
    exposures: {{table: exposures}}
    attribution: {{type: last_touch, conversion_window: 24h}}
    model: {{kind: mab, batch: 1h, burn_in: 0h, min_units_per_arm: 0, seed: 3}}
  hero_first_holdout:
    status: live
    design_factors:
      headline: [Ship faster, Built for teams, Save hours, Own your data, Open source]
      cta_text: [Start free, Book a demo]
    reward: signup
    exposures:
      sql: >-
        SELECT anonymous_id, timestamp, 'hero_first_holdout' AS optimization_id, variant, context,
        anonymous_id LIKE '%3' AS holdout FROM exposures WHERE optimization_id = 'hero'
    attribution: {{type: first_touch, conversion_window: 12h}}
    model: {{kind: mab, batch: 2h, burn_in: 0h, min_units_per_arm: 0, holdout: {{share: 0.1}}, seed: 4}}
    guardrails: [{{metric: revenue, better: higher, tolerance: {{relative: 0.1}}}}]
  checkout:
    status: live
    design_factors: {{flow: [multi_step, one_page], price_display: [monthly, annual]}}
    context_factors: [country, device]
    reward: revenue
    exposures: {{table: exposures}}
    attribution: {{type: last_touch, conversion_window: 24h}}
    model: {{kind: cmab, batch: 1h, burn_in: 0h, min_units_per_arm: 0, seed: 5}}
    guardrails: [{{metric: signup, better: higher, tolerance: {{absolute: 0.01}}}}]
  checkout_first_visitor:
    status: live
    design_factors: {{flow: [multi_step, one_page], price_display: [monthly, annual]}}
    reward: revenue
    exposures:
      sql: >-
        SELECT anonymous_id, timestamp, 'checkout_first_visitor' AS optimization_id, variant, context
        FROM exposures WHERE optimization_id = 'checkout'
    attribution: {{type: first_touch, conversion_window: 6h, unit: visitor}}
    model: {{kind: mab, batch: 1h, seed: 6}}
"#
    )
}

/// A project with a generated Parquet warehouse and one definitions file per engine.
fn project(visits: u64, days: u32) -> Project {
    let project = Project::new();
    let folder = project.path("warehouse");
    levered::synth::write_example_warehouse(&folder, visits, days, 11).expect("a warehouse");
    let table = |name: &str| folder.join(format!("{name}.parquet")).display().to_string();
    let spark = format!(
        "{{engine: spark, remote: \"{}\", tables: {{exposures: \"{}\", signups: \"{}\", orders: \"{}\"}}}}",
        remote(),
        table("exposures"),
        table("signups"),
        table("orders")
    );
    project.write("duckdb.yaml", &definitions("{path: warehouse}", "duckdb"));
    project.write("spark.yaml", &definitions(&spark, "spark"));
    let split = spark.replacen("{engine: spark", "{engine: spark, scan_parts: 3", 1);
    project.write("spark-split.yaml", &definitions(&split, "spark-split"));
    project
}

fn aggregates(file: &Path, name: &str, as_of_us: i64) -> ScanResult {
    let config = levered::config::load(file).expect("valid definitions");
    let optimization = &config.optimizations[name];
    let engine = warehouse::open(&config.warehouse).expect("the engine opens");
    engine
        .aggregate(&ScanPlan {
            optimization,
            arms: optimization.numbered_variants(),
            as_of: levered::time::Instant::from_micros(as_of_us),
            from_batch: None,
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-300)
}

/// Also in parts (docs/design.md §2.14): a scan in three time or hash parts gives
/// the aggregates of one scan, whose single part levered chose from the rows and the executor's
/// memory.
#[test]
fn spark_gives_the_aggregates_of_duckdb() {
    let project = project(8_000, 3);
    let as_of_us = AS_OF.parse::<DateTime<Utc>>().unwrap().timestamp_micros();
    for name in [
        "hero",
        "hero_first_holdout",
        "checkout",
        "checkout_first_visitor",
    ] {
        let duck = aggregates(&project.path("duckdb.yaml"), name, as_of_us);
        let spark = aggregates(&project.path("spark.yaml"), name, as_of_us);
        let split = aggregates(&project.path("spark-split.yaml"), name, as_of_us);
        assert_eq!(split.parts, 3, "{name}");
        assert_eq!(
            spark.parts, 1,
            "{name}: chosen, and one executor holds 8,000 visits"
        );
        assert_eq!(
            ScanResult { parts: 1, ..split },
            spark,
            "{name}: three parts on Spark"
        );
        assert!(duck.rows.len() > 20, "{name}: {} rows", duck.rows.len());
        assert_eq!(duck.unmatched, spark.unmatched, "{name}");
        if name.starts_with("hero") {
            assert!(
                !duck.unmatched.is_empty(),
                "{name}: the warehouse has unmatched rows"
            );
        }
        assert_eq!(
            (duck.first_exposure, duck.newest_exposure),
            (spark.first_exposure, spark.newest_exposure),
            "{name}"
        );
        assert_eq!(duck.rows.len(), spark.rows.len(), "{name}");
        for (d, s) in duck.rows.iter().zip(&spark.rows) {
            let key = |r: &levered::warehouse::BatchRow| {
                (
                    r.batch_start,
                    r.context.clone(),
                    r.arm_id,
                    r.holdout,
                    r.units,
                    r.conversions,
                )
            };
            assert_eq!(key(d), key(s), "{name}");
            assert!(
                close(d.value_sum, s.value_sum) && close(d.value_sq_sum, s.value_sq_sum),
                "{name}: {d:?} {s:?}"
            );
            assert_eq!(d.guardrails.len(), s.guardrails.len(), "{name}");
            for (g, h) in d.guardrails.iter().zip(&s.guardrails) {
                assert_eq!(
                    (&g.metric, g.conversions),
                    (&h.metric, h.conversions),
                    "{name}"
                );
                assert!(
                    close(g.value_sum, h.value_sum) && close(g.value_sq_sum, h.value_sq_sum),
                    "{name}: {g:?} {h:?}"
                );
            }
        }
        let guarded: i64 = duck
            .rows
            .iter()
            .flat_map(|r| &r.guardrails)
            .map(|g| g.conversions)
            .sum();
        match name {
            "hero_first_holdout" | "checkout" => assert!(guarded > 0, "{name}: guardrail rewards"),
            _ => assert_eq!(guarded, 0, "{name}"),
        }
        let holdout_rows = duck.rows.iter().filter(|r| r.holdout).count();
        let contexts: std::collections::BTreeSet<_> =
            duck.rows.iter().map(|r| r.context.as_str()).collect();
        match name {
            "hero_first_holdout" => assert!(holdout_rows > 0, "{name}: holdout units"),
            "checkout" => assert!(contexts.len() > 4, "{name}: {contexts:?}"),
            _ => assert_eq!(holdout_rows, 0, "{name}"),
        }
    }
}

/// The allocation and report CSVs of a run, by optimization and file, without `trained_at`.
fn outputs(project: &Project, state: &str) -> BTreeMap<String, Vec<BTreeMap<String, String>>> {
    let mut files = BTreeMap::new();
    for name in [
        "hero",
        "hero_first_holdout",
        "checkout",
        "checkout_first_visitor",
    ] {
        for file in ["allocation.csv", "report.csv"] {
            let path = project.path(&format!("out-{state}/{name}/{file}"));
            // Everything but the wall-clock time allocation.csv was written at.
            let mut rows = read_csv(&path);
            for row in &mut rows {
                row.remove("trained_at");
            }
            files.insert(format!("{name}/{file}"), rows);
        }
    }
    files
}

#[test]
fn spark_trains_to_the_posteriors_and_allocations_of_duckdb() {
    let project = project(6_000, 2);
    for engine in ["duckdb", "spark"] {
        let out = project.levered(&[
            "train",
            "--all",
            "--config",
            &format!("{engine}.yaml"),
            "--as-of",
            AS_OF,
        ]);
        assert_eq!(out.code, 0, "{engine}: {}", out.stderr);
    }
    let duck = outputs(&project, "duckdb");
    let spark = outputs(&project, "spark");
    assert_eq!(duck.len(), 8);
    for (file, rows) in &duck {
        assert!(!rows.is_empty(), "{file}");
        assert_eq!(rows, &spark[file], "{file}");
    }
}

#[test]
fn hourly_spark_runs_equal_a_full_spark_run() {
    let project = project(4_000, 2);
    let spark = std::fs::read_to_string(project.path("spark.yaml")).unwrap();
    project.write("full.yaml", &spark.replace("spark.duckdb", "full.duckdb"));
    let end: DateTime<Utc> = AS_OF.parse().unwrap();
    let mut as_of = end - TimeDelta::hours(6);
    let mut hourly = Vec::new();
    let mut incremental = 0;
    while as_of <= end {
        hourly = train_all(&project.path("spark.yaml"), as_of, false);
        incremental += hourly
            .iter()
            .filter(|r| r.scan.mode == "incremental")
            .count();
        as_of += TimeDelta::hours(1);
    }
    assert!(incremental >= 18, "{incremental} incremental runs");
    let full = train_all(&project.path("full.yaml"), end, true);
    for (h, f) in hourly.iter().zip(&full) {
        assert_eq!(h.optimization, f.optimization);
        assert!(h.scan.mature_units > 500, "{} units", h.scan.mature_units);
        for (a, b) in h.arms.iter().zip(&f.arms) {
            assert_eq!(
                (a.arm_id, a.units, a.conversions),
                (b.arm_id, b.units, b.conversions)
            );
            assert!(close(a.mean, b.mean), "{a:?} {b:?}");
        }
    }
}

#[test]
fn spark_errors_name_the_metric_and_an_unreachable_endpoint_is_a_data_error() {
    let project = project(500, 1);
    for engine in ["duckdb", "spark"] {
        let broken = std::fs::read_to_string(project.path(&format!("{engine}.yaml")))
            .unwrap()
            .replace("FROM orders", "FROM no_such_orders");
        project.write(&format!("broken-{engine}.yaml"), &broken);
    }
    // The hero optimizations train, the checkout ones fail: a partial failure on either engine.
    let run = |command: &str, engine: &str| {
        let file = format!("broken-{engine}.yaml");
        let mut args = vec![command, "--config", &file, "--as-of", AS_OF];
        if command == "train" {
            args.push("--all");
        }
        project.levered(&args)
    };
    let (duck, spark) = (run("train", "duckdb"), run("train", "spark"));
    assert_eq!(
        (duck.code, spark.code),
        (1, 1),
        "{}\n{}",
        duck.stderr,
        spark.stderr
    );
    assert!(
        spark.stderr.contains(
            "the SQL of metric `revenue`: [TABLE_OR_VIEW_NOT_FOUND] The table or view `no_such_orders`"
        ),
        "{}",
        spark.stderr
    );
    let (duck, spark) = (run("validate", "duckdb"), run("validate", "spark"));
    let all = format!("{}{}", spark.stdout, spark.stderr);
    assert_eq!((duck.code, spark.code), (3, 3), "{all}");
    assert!(
        all.contains("revenue") && all.contains("TABLE_OR_VIEW_NOT_FOUND"),
        "{all}"
    );
    let out = project.levered(&["validate", "--config", "spark.yaml", "--as-of", AS_OF]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);

    let unreachable = std::fs::read_to_string(project.path("spark.yaml"))
        .unwrap()
        .replace(&remote(), "sc://127.0.0.1:9");
    project.write("unreachable.yaml", &unreachable);
    let out = project.levered(&["train", "--all", "--config", "unreachable.yaml"]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("cannot open the warehouse sc://127.0.0.1:9"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[test]
fn spark_runs_nothing_but_a_query_from_user_sql() {
    let project = project(200, 1);
    let spark = std::fs::read_to_string(project.path("spark.yaml")).unwrap();
    let signups = "SELECT anonymous_id, created_at AS timestamp FROM signups WHERE created_at >= $start AND created_at < $end";
    let with_metric = |sql: &str| {
        let text = spark.replace(signups, sql);
        assert_ne!(text, spark);
        project.write("hostile.yaml", &text);
    };
    // A table the server would keep if any of these commands ran.
    let probe = format!("levered_probe_{}", std::process::id());
    let command = format!("CREATE TABLE {probe} AS SELECT 1 AS a");
    let breakout = format!("SELECT anonymous_id, created_at AS timestamp FROM signups) AS q LIMIT 0; {command}; SELECT * FROM (SELECT anonymous_id, created_at AS timestamp FROM signups");
    for hostile in [breakout, command] {
        with_metric(&hostile);
        let out = project.levered(&["validate", "--config", "hostile.yaml", "--as-of", AS_OF]);
        assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
        assert!(out.stdout.contains("metrics.signup.sql"), "{}", out.stdout);
        let out = project.levered(&[
            "train",
            "--all",
            "--config",
            "hostile.yaml",
            "--as-of",
            AS_OF,
        ]);
        assert_eq!(
            out.code, 1,
            "the signup optimizations fail, the others train: {}",
            out.stderr
        );
        assert!(out.stderr.contains("metric `signup`"), "{}", out.stderr);
    }
    with_metric(&format!(
        "SELECT 'x' AS anonymous_id, current_timestamp() AS timestamp FROM {probe}"
    ));
    let out = project.levered(&["validate", "--config", "hostile.yaml", "--as-of", AS_OF]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("TABLE_OR_VIEW_NOT_FOUND"),
        "the table was never created: {}",
        out.stdout
    );
}
