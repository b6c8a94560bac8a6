//! Guardrail metrics (docs/design.md §3.21): an arm that harms one is held at the floor, dropped
//! after incubation and never the winner; the guardrails are aggregated in the reward's query, and
//! incrementally as in a full scan.

use std::cell::Cell;
use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use levered::warehouse::{
    AggregateRow, Backend, ColumnKind, Dialect, DuckDb, Engine, EngineError, Params, ScanPlan,
    Split, TextPair,
};

use crate::support::{read_csv, train_all, Project};

/// Blue signs up three times as often as red (15% against 5%) but refunds five times as often
/// (10% against 2%); both open 1.2 support tickets per visitor.
const WAREHOUSE: &str = "
CREATE TABLE exposures AS
  SELECT c || '-' || n AS anonymous_id, TIMESTAMP '2026-03-01' + INTERVAL (n * 40) SECOND AS timestamp,
         'hero' AS optimization_id, '{\"color\":\"' || c || '\"}' AS variant
  FROM range(2000) AS t(n), (VALUES ('red'), ('blue')) AS v(c);
CREATE TABLE signups AS
  SELECT c || '-' || n AS anonymous_id, TIMESTAMP '2026-03-01' + INTERVAL (n * 40 + 60) SECOND AS created_at
  FROM range(2000) AS t(n), (VALUES ('red', 20), ('blue', 7)) AS v(c, every) WHERE n % every = 0;
CREATE TABLE refunds AS
  SELECT c || '-' || n AS anonymous_id, TIMESTAMP '2026-03-01' + INTERVAL (n * 40 + 600) SECOND AS refunded_at
  FROM range(2000) AS t(n), (VALUES ('red', 50), ('blue', 10)) AS v(c, every) WHERE n % every = 0;
CREATE TABLE tickets AS
  SELECT c || '-' || n AS anonymous_id, TIMESTAMP '2026-03-01' + INTERVAL (n * 40 + 900) SECOND AS opened_at,
         CAST(n % 5 AS DOUBLE) * 0.6 AS minutes
  FROM range(2000) AS t(n), (VALUES ('red'), ('blue')) AS v(c);
";

fn definitions(status: &str, model: &str, guardrails: &str) -> String {
    format!(
        r#"
warehouse: {{path: warehouse.duckdb, scan_parts: 1}}
metrics:
  signup:
    type: bool
    sql: SELECT anonymous_id, created_at AS timestamp FROM signups WHERE created_at >= $start AND created_at < $end
  refunds:
    type: bool
    sql: SELECT anonymous_id, refunded_at AS timestamp FROM refunds WHERE refunded_at >= $start AND refunded_at < $end
  support_minutes:
    type: numeric
    sql: SELECT anonymous_id, opened_at AS timestamp, minutes AS value FROM tickets WHERE opened_at >= $start AND opened_at < $end
optimizations:
  hero:
    status: {status}
    design_factors: {{color: [red, blue]}}
    reward: signup
    exposures: {{table: exposures}}
    attribution: {{conversion_window: 2h}}
    model: {model}
{guardrails}"#
    )
}

const MODEL: &str = "{kind: mab, burn_in: 0h, min_units_per_arm: 0, floor: 0.02}";

const GUARDRAILS: &str = "    guardrails:
      - {metric: refunds, better: lower, tolerance: {relative: 0.1}}
      - {metric: support_minutes, better: lower, tolerance: {absolute: 0.5}, confidence: 0.9}
";

fn as_of() -> DateTime<Utc> {
    "2026-03-03T00:00:00Z".parse().unwrap()
}

fn project(definitions: &str) -> Project {
    let project = Project::new();
    project.warehouse(WAREHOUSE);
    project.write("levered.yaml", definitions);
    project
}

/// The report rows of `hero`, by arm id.
fn arms(project: &Project) -> BTreeMap<String, BTreeMap<String, String>> {
    read_csv(&project.path("out/hero/report.csv"))
        .into_iter()
        .map(|row| (row["arm_id"].clone(), row))
        .collect()
}

#[test]
fn the_best_arm_on_the_reward_is_dropped_when_it_harms_a_guardrail() {
    let plain = project(&definitions("live", MODEL, ""));
    let report = &train_all(&plain.path("levered.yaml"), as_of(), false)[0];
    let blue = report
        .allocation
        .iter()
        .find(|a| a.arm_id.to_string() == "2")
        .unwrap();
    assert!(blue.weight > 0.9, "without guardrails blue wins: {blue:?}");

    let guarded = project(&definitions("live", MODEL, GUARDRAILS));
    let report = &train_all(&guarded.path("levered.yaml"), as_of(), false)[0];
    let weights: Vec<(String, String, f64)> = report
        .allocation
        .iter()
        .map(|a| {
            (
                a.arm_id.to_string(),
                a.status.as_str().to_string(),
                a.weight,
            )
        })
        .collect();
    assert_eq!(
        weights,
        [
            ("1".to_string(), "active".to_string(), 1.0),
            ("2".to_string(), "dropped".to_string(), 0.0)
        ]
    );
    let rows = arms(&guarded);
    let (red, blue) = (&rows["1"], &rows["2"]);
    // 2000 units each: red 40 refunds, blue 200; the prior Beta(2p, 2(1 − p)) at the pooled rate
    // p = 240 / 4000, so blue's posterior mean is (0.12 + 200) / (2 + 2000).
    assert_eq!(blue["guardrail_refunds_conversions"], "200");
    assert_eq!(red["guardrail_refunds_conversions"], "40");
    let mean: f64 = blue["guardrail_refunds_mean"].parse().unwrap();
    assert!((mean - 200.12 / 2002.0).abs() < 1e-12, "{mean}");
    assert_eq!(blue["guardrail_refunds_harmful"], "true");
    assert!(blue["guardrail_refunds_p_harm"].parse::<f64>().unwrap() > 0.999);
    assert_eq!(
        red["guardrail_refunds_p_harm"], "",
        "the baseline has no P(harm)"
    );
    // Equal ticket minutes: no harm.
    assert_eq!(blue["guardrail_support_minutes_harmful"], "false");
    assert!(
        blue["guardrail_support_minutes_p_harm"]
            .parse::<f64>()
            .unwrap()
            < 0.5
    );
    // The drop and its reason are in the history.
    let history = guarded.levered(&[
        "history",
        "--optimization",
        "hero",
        "--config",
        "levered.yaml",
    ]);
    assert_eq!(history.code, 0, "{history:?}");
    assert!(
        history.stdout.contains("guardrail refunds: P(harm)"),
        "{}",
        history.stdout
    );
    // The page has a panel per guardrail, and the table of `report` a P(harm) column.
    let report = [
        "report",
        "--optimization",
        "hero",
        "--config",
        "levered.yaml",
    ];
    let html = guarded.levered(&[&report[..], &["--html", "hero.html"]].concat());
    assert_eq!(html.code, 0, "{html:?}");
    let page = std::fs::read_to_string(guarded.path("hero.html")).unwrap();
    assert!(page.contains("<h2>Guardrail refunds</h2>"), "{page}");
    assert!(
        page.contains("Harmful, held at the floor or dropped: arm 2."),
        "{page}"
    );
    assert!(
        page.contains("<h2>Guardrail support_minutes</h2>"),
        "{page}"
    );
    assert!(page.contains("No arm is harmful on it."), "{page}");
    let table = guarded.levered(&report);
    assert!(table.stdout.contains("refunds p_harm"), "{}", table.stdout);
    assert!(table.stdout.contains("1.0000!"), "{}", table.stdout);
}

#[test]
fn the_summary_line_names_the_arms_a_guardrail_drops_or_holds() {
    let dropped = project(&definitions("live", MODEL, GUARDRAILS));
    let train = [
        "train",
        "--all",
        "--config",
        "levered.yaml",
        "--as-of",
        "2026-03-03T00:00:00Z",
    ];
    let out = dropped.levered(&train);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("; dropped by a guardrail: arm 2;"),
        "{}",
        out.stderr
    );
    let model = "{kind: mab, burn_in: 0h, min_units_per_arm: 0, floor: 0.02, drop: {below: 0.01, incubation: 30d}}";
    let held = project(&definitions("live", model, GUARDRAILS));
    let out = held.levered(&train);
    assert!(
        out.stderr
            .contains("; held at the floor by a guardrail: arm 2;"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_harmful_arm_is_held_at_the_floor_while_it_incubates() {
    let model = "{kind: mab, burn_in: 0h, min_units_per_arm: 0, floor: 0.02, drop: {below: 0.01, incubation: 30d}}";
    let guarded = project(&definitions("live", model, GUARDRAILS));
    let report = &train_all(&guarded.path("levered.yaml"), as_of(), false)[0];
    let weights: Vec<f64> = report.allocation.iter().map(|a| a.weight).collect();
    assert_eq!(report.allocation[1].status.as_str(), "incubating");
    assert_eq!(weights[1], 0.02, "blue, harmful, at the floor");
    assert!((weights[0] - 0.98).abs() < 1e-15, "{weights:?}");
}

#[test]
fn a_completed_optimization_never_locks_in_a_harmful_winner() {
    let plain = project(&definitions("completed", MODEL, ""));
    let report = &train_all(&plain.path("levered.yaml"), as_of(), false)[0];
    assert_eq!(report.winner.as_ref().map(|w| w.arm_id), Some(2));
    let guarded = project(&definitions("completed", MODEL, GUARDRAILS));
    let report = &train_all(&guarded.path("levered.yaml"), as_of(), false)[0];
    assert_eq!(report.winner.as_ref().map(|w| w.arm_id), Some(1));
    let weights: Vec<f64> = report.allocation.iter().map(|a| a.weight).collect();
    assert_eq!(weights, [1.0, 0.0]);
}

/// A DuckDB warehouse that counts the aggregation queries it runs.
struct Counting {
    engine: DuckDb,
    queries: Cell<usize>,
}

impl Backend for Counting {
    fn dialect(&self) -> Dialect {
        self.engine.dialect()
    }
    fn tables(&self) -> &BTreeMap<String, String> {
        self.engine.tables()
    }
    fn schema(
        &self,
        text: &str,
        params: &Params,
    ) -> Result<Vec<(String, ColumnKind)>, EngineError> {
        self.engine.schema(text, params)
    }
    fn rows(&self, text: &str, params: &Params) -> Result<Vec<AggregateRow>, EngineError> {
        self.queries.set(self.queries.get() + 1);
        self.engine.rows(text, params)
    }
    fn split(&self) -> Split {
        self.engine.split()
    }
    fn integer_pairs(&self, text: &str, params: &Params) -> Result<Vec<(i64, i64)>, EngineError> {
        self.engine.integer_pairs(text, params)
    }
    fn text_pairs(&self, text: &str, params: &Params) -> Result<Vec<TextPair>, EngineError> {
        self.engine.text_pairs(text, params)
    }
    fn version(&self) -> String {
        Backend::version(&self.engine)
    }
}

#[test]
fn the_guardrails_are_aggregated_in_the_rewards_one_query() {
    let guarded = project(&definitions("live", MODEL, GUARDRAILS));
    let config = levered::config::load(&guarded.path("levered.yaml")).unwrap();
    let hero = &config.optimizations["hero"];
    let engine = Counting {
        engine: DuckDb::open(&config.warehouse).unwrap(),
        queries: Cell::new(0),
    };
    let scan = engine
        .aggregate(&ScanPlan {
            optimization: hero,
            arms: hero.numbered_variants(),
            as_of: levered::time::Instant::from_utc(as_of()),
            from_batch: None,
        })
        .unwrap();
    assert_eq!(engine.queries.get(), 1, "one aggregation query");
    let sums = |arm: u32, metric: usize| -> (i64, i64, i64, f64) {
        scan.rows
            .iter()
            .filter(|r| r.arm_id == arm)
            .fold((0, 0, 0, 0.0), |(u, c, g, v), r| {
                let g_row = &r.guardrails[metric];
                (
                    u + r.units,
                    c + r.conversions,
                    g + g_row.conversions,
                    v + g_row.value_sum,
                )
            })
    };
    // 2000 units per arm; signups 100 and 286; refunds 40 and 200; ticket minutes 1.2 per unit.
    let (units, signups, refunds, _) = sums(1, 0);
    assert_eq!((units, signups, refunds), (2000, 100, 40));
    let (units, signups, refunds, _) = sums(2, 0);
    assert_eq!((units, signups, refunds), (2000, 286, 200));
    let (units, _, tickets, minutes) = sums(2, 1);
    assert_eq!((units, tickets), (2000, 2000));
    assert!((minutes - 2400.0).abs() < 1e-9, "{minutes}");
}

#[test]
fn hourly_runs_with_guardrails_give_what_a_full_run_gives() {
    let definitions = |state: &str| {
        format!(
            r#"
warehouse: {{path: warehouse}}
state: {state}
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
    design_factors: {{headline: [Ship faster, Built for teams, Save hours]}}
    reward: signup
    exposures: {{table: exposures}}
    attribution: {{conversion_window: 6h}}
    model: {{kind: mab, burn_in: 0h, min_units_per_arm: 0, seed: 1}}
    guardrails: [{{metric: revenue, better: higher, tolerance: {{relative: 0.2}}}}]
  checkout:
    status: live
    design_factors: {{flow: [multi_step, one_page]}}
    reward: revenue
    exposures: {{table: exposures}}
    attribution: {{conversion_window: 3h}}
    model: {{kind: mab, batch: 2h, seed: 1}}
    guardrails: [{{metric: signup, better: higher, tolerance: {{absolute: 0.01}}}}]
"#
        )
    };
    let project = Project::new();
    levered::synth::write_example_warehouse(&project.path("warehouse"), 6_000, 2, 5).unwrap();
    project.write("hourly.yaml", &definitions("hourly.duckdb"));
    project.write("full.yaml", &definitions("full.duckdb"));
    let end: DateTime<Utc> = "2026-01-08T03:00:00Z".parse().unwrap();
    let mut as_of = end - TimeDelta::hours(12);
    let mut hourly = Vec::new();
    while as_of <= end {
        hourly = train_all(&project.path("hourly.yaml"), as_of, false);
        as_of += TimeDelta::hours(1);
    }
    assert!(hourly.iter().all(|r| r.scan.mode == "incremental"));
    let full = train_all(&project.path("full.yaml"), end, true);
    for (h, f) in hourly.iter().zip(&full) {
        for (a, b) in h.arms.iter().zip(&f.arms) {
            assert_eq!(a.guardrails.len(), 1, "{a:?}");
            for (x, y) in a.guardrails.iter().zip(&b.guardrails) {
                assert_eq!((&x.metric, x.conversions), (&y.metric, y.conversions));
                assert!(
                    (x.mean - y.mean).abs() <= 1e-9 * y.mean.abs().max(1.0),
                    "{x:?} {y:?}"
                );
                let (p, q) = (x.p_harm.unwrap_or(0.0), y.p_harm.unwrap_or(0.0));
                assert!((p - q).abs() <= 1e-9, "{x:?} {y:?}");
            }
        }
    }
}

/// Blue signs up three times as often as red in both countries, but refunds five times as often
/// only in the US (10% against 2%; in DE both refund 2%).
const CONTEXT_WAREHOUSE: &str = "
CREATE TABLE exposures AS
  SELECT k || '-' || c || '-' || n AS anonymous_id, TIMESTAMP '2026-03-01' + INTERVAL (n * 20) SECOND AS timestamp,
         'hero' AS optimization_id, '{\"color\":\"' || c || '\"}' AS variant, '{\"country\":\"' || k || '\"}' AS context
  FROM range(4000) AS t(n), (VALUES ('red'), ('blue')) AS v(c), (VALUES ('US'), ('DE')) AS x(k);
CREATE TABLE signups AS
  SELECT k || '-' || c || '-' || n AS anonymous_id, TIMESTAMP '2026-03-01' + INTERVAL (n * 20 + 60) SECOND AS created_at
  FROM range(4000) AS t(n), (VALUES ('red', 20), ('blue', 7)) AS v(c, every), (VALUES ('US'), ('DE')) AS x(k)
  WHERE n % every = 0;
CREATE TABLE refunds AS
  SELECT k || '-' || c || '-' || n AS anonymous_id, TIMESTAMP '2026-03-01' + INTERVAL (n * 20 + 600) SECOND AS refunded_at
  FROM range(4000) AS t(n), (VALUES ('red', 'US', 50), ('blue', 'US', 10), ('red', 'DE', 50), ('blue', 'DE', 50)) AS v(c, k, every)
  WHERE n % every = 0;
CREATE TABLE tickets (anonymous_id VARCHAR, opened_at TIMESTAMP, minutes DOUBLE);
";

#[test]
fn a_contextual_model_holds_an_arm_at_the_floor_only_where_it_harms() {
    let model = "{kind: cmab, burn_in: 0h, min_units_per_arm: 0, floor: 0.02, drop: {below: 0.0, incubation: 30d}}\n    context_factors: [country]";
    let guardrails =
        "    guardrails: [{metric: refunds, better: lower, tolerance: {relative: 0.1}}]\n";
    let project = Project::new();
    project.warehouse(CONTEXT_WAREHOUSE);
    project.write("levered.yaml", &definitions("live", model, guardrails));
    let report = &train_all(&project.path("levered.yaml"), as_of(), false)[0];
    let weight = |context: &str, arm: &str| {
        report
            .allocation
            .iter()
            .find(|a| a.context.as_str() == context && a.arm_id.to_string() == arm)
            .map(|a| a.weight)
            .unwrap()
    };
    assert_eq!(weight("country=US", "2"), 0.02, "blue harms in the US");
    assert!(weight("country=DE", "2") > 0.9, "and wins in DE");
    assert_eq!(weight("*", "2"), 0.02, "pooled, blue refunds 6% against 2%");
    let rows = read_csv(&project.path("out/hero/report.csv"));
    let harmful = |context: &str| {
        rows.iter()
            .find(|r| r["context"] == context && r["arm_id"] == "2")
            .map(|r| r["guardrail_refunds_harmful"].clone())
            .unwrap()
    };
    assert_eq!(
        (harmful("*"), harmful("country=US"), harmful("country=DE")),
        ("true".into(), "true".into(), "false".into())
    );
}

#[test]
fn a_failing_guardrail_sql_fails_the_run_naming_its_metric_and_writes_nothing() {
    let broken =
        definitions("live", MODEL, GUARDRAILS).replace("FROM refunds", "FROM no_such_table");
    let project = project(&broken);
    let out = project.levered(&[
        "train",
        "--all",
        "--config",
        "levered.yaml",
        "--as-of",
        "2026-03-03T00:00:00Z",
    ]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(
        out.stderr
            .contains("exposures and metric `refunds` failed: the SQL of metric `refunds`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("no_such_table"), "{}", out.stderr);
    assert!(!project.path("out/hero/report.csv").exists());
}
