//! The aggregation (README, "What `train` does") on a hand-built warehouse, where every expected count was worked out by hand.
//! Factors color [red, blue] × size [s, l] give arms 1 (red,s), 2 (red,l), 3 (blue,s), 4 (blue,l).
//! Window 2h, batch 1h, as_of 2026-01-02T00:00:00Z.

use std::collections::BTreeMap;

use levered::config;
use levered::time::Instant;
use levered::warehouse::{self, BatchRow, ScanPlan, ScanResult, Unmatched};

use crate::support::{aggregate, Project};

const RED: &str = r#"{"color":"red","size":"s"}"#;
const BLUE: &str = r#"{"color":"blue","size":"s"}"#;

/// (visitor, exposure time, variant) rows of optimization `test`, and the signups.
fn warehouse_sql() -> String {
    let exposures: &[(Option<&str>, &str, &str)] = &[
        // Window edges: a reward exactly at t + 2h counts, one second later does not.
        (Some("v1"), "2026-01-01 10:00:00", RED),
        (Some("v2"), "2026-01-01 10:00:00", RED),
        // A reward at the exposure instant counts, one a second before does not.
        (Some("v3"), "2026-01-01 10:30:00", BLUE),
        (Some("v4"), "2026-01-01 10:30:00", BLUE),
        // Two units of one visitor in two batches; the reward at 11:30 lies in both windows.
        (Some("v5"), "2026-01-01 10:10:00", RED),
        (Some("v5"), "2026-01-01 11:10:00", BLUE),
        // Three exposures in one hour are one unit, with the first exposure's variant.
        (Some("v6"), "2026-01-01 13:05:00", RED),
        (Some("v6"), "2026-01-01 13:20:00", BLUE),
        (Some("v6"), "2026-01-01 13:50:00", RED),
        // Key order and whitespace of the variant JSON do not matter.
        (
            Some("v10"),
            "2026-01-01 14:00:00",
            r#"{ "size" : "s",   "color":"blue" }"#,
        ),
        // Unmatched: unknown level, invalid JSON, an extra key, a NULL id, a time at as_of.
        (
            Some("v9"),
            "2026-01-01 15:00:00",
            r#"{"color":"green","size":"s"}"#,
        ),
        (Some("v13"), "2026-01-01 15:30:00", "not json"),
        (
            Some("v14"),
            "2026-01-01 15:40:00",
            r#"{"color":"red","size":"s","extra":"x"}"#,
        ),
        (None, "2026-01-01 15:00:00", RED),
        (Some("v12"), "2026-01-02 00:00:00", RED),
        // Maturity: 22:00 + 2h = as_of is mature; 22:30 is not.
        (Some("v7"), "2026-01-01 22:00:00", RED),
        (Some("v8"), "2026-01-01 22:30:00", RED),
        // A reward whose latest unit is immature waits with it; it never moves to the older unit.
        (Some("v11"), "2026-01-01 21:00:00", RED),
        (Some("v11"), "2026-01-01 22:45:00", BLUE),
        // Batch 22 straddles the maturity line: v15's unit (22:00, mature) also holds the 22:40
        // exposure, which is no rival for the 23:00 reward.
        (Some("v15"), "2026-01-01 22:00:00", RED),
        (Some("v15"), "2026-01-01 22:40:00", BLUE),
        // The 23:15 unit of a batch still wholly immature takes the 23:30 reward from 21:30 under
        // last touch; under first touch 21:30 keeps it (23:30 = 21:30 + 2h).
        (Some("v16"), "2026-01-01 21:30:00", RED),
        (Some("v16"), "2026-01-01 23:15:00", BLUE),
        (Some("v16"), "2026-01-01 23:50:00", RED),
    ];
    let signups = [
        ("v1", "2026-01-01 12:00:00"),
        ("v2", "2026-01-01 12:00:01"),
        ("v3", "2026-01-01 10:30:00"),
        ("v4", "2026-01-01 10:29:59"),
        ("v5", "2026-01-01 11:30:00"),
        ("v8", "2026-01-01 23:00:00"),
        ("v11", "2026-01-01 23:00:00"),
        ("v15", "2026-01-01 23:00:00"),
        ("v16", "2026-01-01 23:30:00"),
        // At as_of: not seen by this run.
        ("v7", "2026-01-02 00:00:00"),
    ];
    let mut sql = String::from(
        "CREATE TABLE exposures (anonymous_id VARCHAR, timestamp TIMESTAMP, optimization_id VARCHAR, variant VARCHAR);
         CREATE TABLE signups (anonymous_id VARCHAR, created_at TIMESTAMP);
         CREATE TABLE orders (anonymous_id VARCHAR, ordered_at TIMESTAMP, value DOUBLE);
         INSERT INTO exposures VALUES ('x1', '2026-01-01 10:00:00', 'other', 'not json');\n",
    );
    for (id, at, variant) in exposures {
        let id = id.map_or("NULL".to_string(), |v| format!("'{v}'"));
        sql.push_str(&format!(
            "INSERT INTO exposures VALUES ({id}, '{at}', 'test', '{variant}');\n"
        ));
    }
    for (id, at) in signups {
        sql.push_str(&format!("INSERT INTO signups VALUES ('{id}', '{at}');\n"));
    }
    sql.push_str(
        "INSERT INTO orders VALUES ('v1', '2026-01-01 11:00:00', 3), ('v1', '2026-01-01 12:00:00', 5),
                                   ('v3', '2026-01-01 11:00:00', 2), ('v2', '2026-01-01 12:00:01', 100);\n",
    );
    sql
}

fn definitions(attribution: &str, metric: &str) -> String {
    format!(
        r#"
warehouse: {{path: warehouse.duckdb}}
metrics:
  signup:
    type: bool
    sql: SELECT anonymous_id, created_at AS timestamp FROM signups WHERE created_at >= $start AND created_at < $end
  spend:
    type: numeric
    sql: SELECT anonymous_id, ordered_at AS timestamp, value FROM orders
optimizations:
  test:
    status: live
    design_factors: {{color: [red, blue], size: [s, l]}}
    reward: {metric}
    exposures: {{table: exposures}}
    attribution: {attribution}
    model: {{kind: mab, batch: 1h}}
"#
    )
}

const AS_OF_US: i64 = 1_767_312_000_000_000; // 2026-01-02T00:00:00Z

fn scan(attribution: &str, metric: &str) -> ScanResult {
    let project = Project::new();
    project.warehouse(&warehouse_sql());
    let file = project.write("levered.yaml", &definitions(attribution, metric));
    aggregate(&file, "test", AS_OF_US, None).expect("the aggregation runs")
}

/// (hour of 2026-01-01, arm) → (units, conversions)
fn by_hour(result: &ScanResult) -> BTreeMap<(i64, u32), (i64, i64)> {
    let day_start = AS_OF_US - 86_400_000_000;
    result
        .rows
        .iter()
        .map(|r: &BatchRow| {
            (
                (
                    (r.batch_start.micros() - day_start) / 3_600_000_000,
                    r.arm_id,
                ),
                (r.units, r.conversions),
            )
        })
        .collect()
}

fn unmatched(result: &ScanResult) -> BTreeMap<Unmatched, i64> {
    result.unmatched.clone()
}

#[test]
fn last_touch_per_visitor_batch() {
    let result = scan("{type: last_touch, conversion_window: 2h}", "signup");
    let expected = BTreeMap::from([
        ((10, 1), (3, 1)), // v1 converted (reward at the window end), v2 not, v5's reward went to its later unit
        ((10, 3), (2, 1)), // v3 converted at the exposure instant, v4's reward came before
        ((11, 3), (1, 1)), // v5's second unit takes the 11:30 reward
        ((13, 1), (1, 0)), // v6: one unit, the first exposure's variant
        ((14, 3), (1, 0)), // v10: reordered JSON still matches blue/s
        ((21, 1), (2, 0)), // v11's 23:00 reward went to its immature 22:45 unit, v16's to 23:15
        ((22, 1), (2, 1)), // v7 mature at exactly as_of, its reward at as_of unseen; v15; v8 immature
    ]);
    assert_eq!(by_hour(&result), expected);
    // Under a bool metric a converted unit is worth 1: its value and its square sum to conversions.
    for row in &result.rows {
        let conversions = row.conversions as f64;
        assert_eq!(
            (row.value_sum, row.value_sq_sum),
            (conversions, conversions)
        );
    }
    assert_eq!(
        unmatched(&result),
        BTreeMap::from([
            (Unmatched::NullId, 1),
            (Unmatched::Future, 1),
            (Unmatched::UnknownVariant, 3)
        ])
    );
    assert_eq!(
        result.first_exposure.map(Instant::micros),
        Some(AS_OF_US - 14 * 3_600_000_000)
    );
    assert_eq!(
        result.newest_exposure.map(Instant::micros),
        Some(AS_OF_US - 10 * 60_000_000)
    );
}

#[test]
fn first_touch_credits_the_earliest_unit_in_the_window() {
    let result = scan("{type: first_touch, conversion_window: 2h}", "signup");
    let expected = BTreeMap::from([
        ((10, 1), (3, 2)), // v5's 11:30 reward goes to its 10:10 unit
        ((10, 3), (2, 1)),
        ((11, 3), (1, 0)),
        ((13, 1), (1, 0)),
        ((14, 3), (1, 0)),
        ((21, 1), (2, 2)), // v11's reward at 23:00 = 21:00 + 2h: the window is closed at both ends
        ((22, 1), (2, 1)),
    ]);
    assert_eq!(by_hour(&result), expected);
}

#[test]
fn unit_visitor_keeps_only_the_first_exposure() {
    let result = scan(
        "{type: last_touch, conversion_window: 2h, unit: visitor}",
        "signup",
    );
    let expected = BTreeMap::from([
        ((10, 1), (3, 2)), // v5's only unit is 10:10 and takes the 11:30 reward
        ((10, 3), (2, 1)),
        ((13, 1), (1, 0)),
        ((14, 3), (1, 0)),
        ((21, 1), (2, 2)), // v11's only unit is 21:00 (mature), the reward at 23:00 is within 2h
        ((22, 1), (2, 1)),
    ]);
    assert_eq!(by_hour(&result), expected);
}

#[test]
fn numeric_rewards_sum_per_unit_then_square() {
    let result = scan("{type: last_touch, conversion_window: 2h}", "spend");
    let red_10 = result
        .rows
        .iter()
        .find(|r| r.arm_id == 1 && r.batch_start.micros() == AS_OF_US - 14 * 3_600_000_000)
        .expect("batch 10 of red/s");
    // v1: 3 + 5 = 8 (both within [10:00, 12:00]); v2's order at 12:00:01 is outside; v5: nothing.
    assert_eq!((red_10.units, red_10.conversions), (3, 1));
    assert_eq!(red_10.value_sum, 8.0);
    assert_eq!(red_10.value_sq_sum, 64.0);
    let blue_10 = result
        .rows
        .iter()
        .find(|r| r.arm_id == 3 && r.batch_start.micros() == AS_OF_US - 14 * 3_600_000_000)
        .expect("batch 10 of blue/s");
    // v3's order at 11:00 (value 2): units v3, v4.
    assert_eq!(
        (
            blue_10.units,
            blue_10.conversions,
            blue_10.value_sum,
            blue_10.value_sq_sum
        ),
        (2, 1, 2.0, 4.0)
    );
}

#[test]
fn a_failing_metric_names_the_metric_and_the_optimization() {
    let project = Project::new();
    project.warehouse(&warehouse_sql());
    let yaml =
        definitions("{conversion_window: 2h}", "signup").replace("FROM signups", "FROM signupz");
    let file = project.write("levered.yaml", &yaml);
    let config = config::load(&file).unwrap();
    let optimization = &config.optimizations["test"];
    let engine = warehouse::open(&config.warehouse).unwrap();
    let error = engine
        .aggregate(&ScanPlan {
            optimization,
            arms: vec![(1, vec!["red".into(), "s".into()])],
            as_of: Instant::from_micros(AS_OF_US),
            from_batch: None,
        })
        .unwrap_err()
        .to_string();
    assert!(error.contains("metric `signup`"), "{error}");
    assert!(error.contains("optimization `test`"), "{error}");
    assert!(error.contains("signupz"), "{error}");
}

#[test]
fn user_sql_cannot_write_or_read_outside_the_warehouse() {
    let project = Project::new();
    project.warehouse(&warehouse_sql());
    let escape = project.path("escaped.csv");
    let attacks = [
        format!(
            "SELECT anonymous_id, created_at AS timestamp FROM signups) AS m0; COPY (SELECT 1) TO '{}'; SELECT * FROM (SELECT 1",
            escape.display()
        ),
        "SELECT column0 AS anonymous_id, now() AS timestamp FROM read_csv('/etc/passwd')".to_string(),
        "SELECT anonymous_id, created_at AS timestamp FROM signups --".to_string(),
    ];
    for attack in attacks {
        let yaml = definitions("{conversion_window: 2h}", "signup").replace(
            "SELECT anonymous_id, created_at AS timestamp FROM signups WHERE created_at >= $start AND created_at < $end",
            &format!("\"{}\"", attack.replace('"', "\\\"")),
        );
        let file = project.write("levered.yaml", &yaml);
        let config = config::load(&file).unwrap();
        let optimization = &config.optimizations["test"];
        let engine = warehouse::open(&config.warehouse).unwrap();
        let result = engine.aggregate(&ScanPlan {
            optimization,
            arms: vec![(1, vec!["red".into(), "s".into()])],
            as_of: Instant::from_micros(AS_OF_US),
            from_batch: None,
        });
        if attack.ends_with("--") {
            // A trailing comment cannot swallow levered's own SQL: the query still runs.
            assert!(result.is_ok(), "{result:?}");
        } else {
            let error = result.expect_err(&attack).to_string();
            assert!(error.contains("metric `signup`"), "{error}");
        }
        assert!(!escape.exists(), "{attack}");
    }
}
