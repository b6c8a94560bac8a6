//! Untrusted definitions and broken data (README, "Security and operations"): SQL that tries to
//! break out of levered's wrapper, level text that YAML would retype or that holds separators,
//! NULL / non-finite / huge metric values, and a Parquet folder with writer leftovers and broken
//! files.

use std::path::Path;

use crate::support::{aggregate, red_blue, Project};

const AS_OF: &str = "2026-01-02T00:00:00Z";
const AS_OF_US: i64 = 1_767_312_000_000_000;

/// Writes each `(table, SELECT)` as `<folder>/<table>.parquet`.
fn parquet_warehouse(folder: &Path, tables: &[(&str, &str)]) {
    std::fs::create_dir_all(folder).unwrap();
    let connection = duckdb::Connection::open_in_memory().unwrap();
    for (table, select) in tables {
        let path = folder.join(format!("{table}.parquet"));
        connection
            .execute_batch(&format!(
                "COPY ({select}) TO '{}' (FORMAT parquet)",
                path.display()
            ))
            .unwrap();
    }
}

/// Ten visitors of optimization `name` on arm {color: red}, exposed at 10:00, half of them signed up
/// at 10:30.
fn exposures_of(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| {
            format!(
                "SELECT 'v' || CAST(i AS VARCHAR) AS anonymous_id, TIMESTAMP '2026-01-01 10:00:00' AS timestamp, '{name}' AS optimization_id, '{{\"color\":\"red\"}}' AS variant FROM range(10) AS t(i)"
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

const SIGNUPS: &str = "SELECT 'v' || CAST(i AS VARCHAR) AS anonymous_id, TIMESTAMP '2026-01-01 10:30:00' AS created_at FROM range(5) AS t(i)";

fn definitions(metric_sql: &str, first_exposures: &str) -> String {
    format!(
        r#"
warehouse: {{path: warehouse}}
metrics:
  signup:
    type: bool
    sql: "{metric_sql}"
optimizations:
{}{}"#,
        red_blue("a_first", "signup", first_exposures),
        red_blue("b_second", "signup", "{table: exposures}"),
    )
}

fn project(metric_sql: &str, first_exposures: &str) -> Project {
    let project = Project::new();
    parquet_warehouse(
        &project.path("warehouse"),
        &[
            ("exposures", &exposures_of(&["a_first", "b_second"])),
            ("signups", SIGNUPS),
        ],
    );
    project.write("levered.yaml", &definitions(metric_sql, first_exposures));
    project
}

/// `levered train --all` on the project's definitions.
fn train_all(project: &Project) -> crate::support::Output {
    project.levered(&[
        "train",
        "--all",
        "--config",
        "levered.yaml",
        "--as-of",
        AS_OF,
    ])
}

const PLAIN_METRIC: &str = "SELECT anonymous_id, created_at AS timestamp FROM signups";

#[test]
fn metric_sql_that_closes_the_wrapper_is_refused_by_validate_and_writes_nothing() {
    let marker = "x.parquet";
    let breakout = format!(
        "SELECT anonymous_id, created_at AS timestamp FROM signups) AS q LIMIT 0; COPY (SELECT 42 AS a) TO '{marker}' (FORMAT parquet); SELECT * FROM (SELECT anonymous_id, created_at AS timestamp FROM signups"
    );
    let project = project(&breakout, "{table: exposures}");
    let target = project.path("warehouse").join(marker);
    let copy = breakout.replace(marker, &target.display().to_string());
    project.write("levered.yaml", &definitions(&copy, "{table: exposures}"));
    let out = project.levered(&["validate", "--config", "levered.yaml"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stdout.contains("metrics.signup.sql"), "{out:?}");
    assert!(out.stdout.contains("exactly one SELECT"), "{out:?}");
    assert!(!out.stdout.contains("valid: 0 errors"), "{out:?}");
    let out = train_all(&project);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("metric `signup`"), "{out:?}");
    assert!(!target.exists(), "the COPY ran");
}

#[test]
fn exposure_sql_cannot_replace_what_another_optimization_reads() {
    let hostile = r#"{sql: "SELECT * FROM exposures) AS q LIMIT 0; CREATE OR REPLACE VIEW signups AS SELECT * FROM signups WHERE false; SELECT * FROM (SELECT * FROM exposures"}"#;
    let project = project(PLAIN_METRIC, hostile);
    let out = train_all(&project);
    assert_eq!(out.code, 1, "a_first fails, b_second is written: {out:?}");
    assert!(out.stderr.contains("a_first"), "{out:?}");
    assert!(out.stderr.contains("the exposure source"), "{out:?}");
    assert!(out.stderr.contains("exactly one SELECT"), "{out:?}");
    assert!(
        !project.path("out/a_first").exists(),
        "nothing written for a_first"
    );
    let report = crate::support::read_csv(&project.path("out/b_second/report.csv"));
    let red = report
        .iter()
        .find(|r| r["variant"].contains("red"))
        .unwrap();
    assert_eq!(red["units"], "10");
    assert_eq!(red["conversions"], "5", "the signups view is intact");
}

#[test]
fn a_single_statement_that_writes_is_refused() {
    let project = project(
        "COPY (SELECT 1 AS a) TO 'warehouse/y.parquet' (FORMAT parquet)",
        "{table: exposures}",
    );
    let out = project.levered(&["validate", "--config", "levered.yaml"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stdout.contains("metrics.signup.sql"), "{out:?}");
    assert!(!project.path("warehouse/y.parquet").exists());
}

#[test]
fn levels_are_the_text_as_written_and_never_collide() {
    let project = Project::new();
    let variants = [
        r#"{"answer":"no","price":"9.90"}"#,
        r#"{"answer":"yes","price":9.90}"#,
        r#"{"answer":"on","price":"9.90"}"#,
    ];
    let exposures: Vec<String> = variants
        .iter()
        .enumerate()
        .map(|(i, v)| format!("SELECT 'v{i}' AS anonymous_id, TIMESTAMP '2026-01-01 10:00:00' AS timestamp, 'q' AS optimization_id, '{v}' AS variant"))
        .collect();
    parquet_warehouse(
        &project.path("warehouse"),
        &[
            ("exposures", &exposures.join(" UNION ALL ")),
            ("signups", SIGNUPS),
        ],
    );
    let file = project.write(
        "levered.yaml",
        &format!(
            r#"
warehouse: {{path: warehouse}}
metrics:
  signup: {{type: bool, sql: "{PLAIN_METRIC}"}}
optimizations:
  q:
    status: live
    design_factors: {{answer: [no, yes, on], price: [9.90, "9.9"]}}
    reward: signup
    exposures: {{table: exposures}}
    attribution: {{conversion_window: 2h}}
    model: {{kind: mab}}
"#
        ),
    );
    let out = project.levered(&["validate", "--config", "levered.yaml"]);
    assert_eq!(
        out.code, 0,
        "`yes` and `on` are two levels, `9.90` and `9.9` two: {out:?}"
    );
    let scan = aggregate(&file, "q", AS_OF_US, None).unwrap();
    assert!(scan.unmatched.is_empty(), "{:?}", scan.unmatched);
    assert_eq!(scan.rows.iter().map(|r| r.units).sum::<i64>(), 3);
    let arms: std::collections::BTreeSet<u32> = scan.rows.iter().map(|r| r.arm_id).collect();
    assert_eq!(arms.len(), 3, "{:?}", scan.rows);
}

#[test]
fn levels_holding_separator_characters_stay_distinct_arms() {
    // With keys joined by U+001E/U+001F, arms (a1, b1) and (a2, b2) would both read
    // `a␟p␞b␟q␞b␟r`, and the exposures of one would count for both.
    let project = Project::new();
    let exposures = r#"SELECT 'v' || CAST(i AS VARCHAR) AS anonymous_id, TIMESTAMP '2026-01-01 10:00:00' AS timestamp, 's' AS optimization_id, '{"a":"p","b":"q\u001eb\u001fr"}' AS variant FROM range(4) AS t(i)"#;
    parquet_warehouse(
        &project.path("warehouse"),
        &[("exposures", exposures), ("signups", SIGNUPS)],
    );
    let file = project.write(
        "levered.yaml",
        &format!(
            r#"
warehouse: {{path: warehouse}}
metrics:
  signup: {{type: bool, sql: "{PLAIN_METRIC}"}}
optimizations:
  s:
    status: live
    design_factors: {{a: ["p\x1eb\x1fq", p], b: [r, "q\x1eb\x1fr"]}}
    reward: signup
    exposures: {{table: exposures}}
    attribution: {{conversion_window: 2h}}
    model: {{kind: mab}}
"#
        ),
    );
    let scan = aggregate(&file, "s", AS_OF_US, None).unwrap();
    assert!(scan.unmatched.is_empty(), "{:?}", scan.unmatched);
    let arms: Vec<(u32, i64)> = scan.rows.iter().map(|r| (r.arm_id, r.units)).collect();
    assert_eq!(arms, [(4, 4)], "arm 4 is (p, q␞b␟r)");
}

fn numeric_project(values: &str) -> (Project, std::path::PathBuf) {
    let project = Project::new();
    parquet_warehouse(
        &project.path("warehouse"),
        &[
            ("exposures", &exposures_of(&["n"])),
            ("orders", &format!("SELECT 'v' || CAST(i AS VARCHAR) AS anonymous_id, TIMESTAMP '2026-01-01 10:30:00' AS ordered_at, v AS value FROM (VALUES {values}) AS t(i, v)")),
        ],
    );
    let file = project.write(
        "levered.yaml",
        r#"
warehouse: {path: warehouse}
metrics:
  spend:
    type: numeric
    sql: SELECT anonymous_id, ordered_at AS timestamp, value FROM orders
optimizations:
  n:
    status: live
    design_factors: {color: [red, blue]}
    reward: spend
    exposures: {table: exposures}
    attribution: {conversion_window: 2h}
    model: {kind: mab}
"#,
    );
    (project, file)
}

#[test]
fn null_values_are_counted_and_warned_never_a_silent_zero() {
    let (project, file) = numeric_project("(0, 2.5::DOUBLE), (1, NULL), (2, NULL), (2, 4.0)");
    let scan = aggregate(&file, "n", AS_OF_US, None).unwrap();
    assert_eq!(
        scan.unmatched
            .get(&levered::warehouse::Unmatched::NullValue),
        Some(&2)
    );
    let conversions: i64 = scan.rows.iter().map(|r| r.conversions).sum();
    assert_eq!(
        conversions, 2,
        "v1 (only a NULL) did not convert; v2 did, worth 4"
    );
    let value: f64 = scan.rows.iter().map(|r| r.value_sum).sum();
    assert_eq!(value, 6.5);
    let out = train_all(&project);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("2 rows of metric `spend`"), "{out:?}");
    assert!(out.stderr.contains("null_value"), "{out:?}");
}

#[test]
fn non_finite_and_huge_values_are_errors_naming_the_metric_and_column() {
    for (values, expected) in [
        ("(0, 'NaN'::DOUBLE), (1, 1.0)", "NaN or infinite in 1 row"),
        (
            "(0, 'inf'::DOUBLE), (1, '-inf'::DOUBLE)",
            "NaN or infinite in 2 rows",
        ),
        ("(0, 2e13::DOUBLE)", "beyond ±1e9 in 1 row"),
        // Each row is within the bound; the unit's sum is not.
        (
            "(0, 6e8::DOUBLE), (0, 6e8::DOUBLE)",
            "beyond ±1e9 in 1 row or unit",
        ),
    ] {
        let (project, file) = numeric_project(values);
        let error = aggregate(&file, "n", AS_OF_US, None)
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "{values}: {error}");
        assert!(error.contains("metric `spend`"), "{error}");
        assert!(error.contains("column `value`"), "{error}");
        let out = train_all(&project);
        assert_eq!(out.code, 4, "{out:?}");
        assert!(
            !out.stderr.contains("LINE "),
            "no generated SQL quoted: {out:?}"
        );
    }
}

#[test]
fn values_near_the_bound_sum_exactly() {
    let (_project, file) =
        numeric_project("(0, 1e9::DOUBLE), (1, -1e9::DOUBLE), (2, 0.000001::DOUBLE)");
    let scan = aggregate(&file, "n", AS_OF_US, None).unwrap();
    let sum: f64 = scan.rows.iter().map(|r| r.value_sum).sum();
    let squares: f64 = scan.rows.iter().map(|r| r.value_sq_sum).sum();
    assert_eq!(sum, 0.000001);
    assert_eq!(squares, 2e18);
}

#[test]
fn writer_leftovers_and_unread_broken_files_do_not_fail_the_run() {
    let project = project(PLAIN_METRIC, "{table: exposures}");
    let warehouse = project.path("warehouse");
    std::fs::create_dir_all(warehouse.join("_temporary/0")).unwrap();
    std::fs::create_dir_all(warehouse.join("empty_table")).unwrap();
    std::fs::write(warehouse.join("_SUCCESS"), "").unwrap();
    std::fs::write(warehouse.join(".exposures.parquet.crc"), "junk").unwrap();
    std::fs::write(
        warehouse.join("garbled.parquet"),
        b"PAR1\x0f\x00\x01junkPAR1",
    )
    .unwrap();
    std::fs::write(warehouse.join("notes.txt"), "not a table").unwrap();
    let out = train_all(&project);
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn a_broken_file_that_is_read_is_named_with_its_table() {
    let project = project(PLAIN_METRIC, "{table: exposures}");
    let signups = project.path("warehouse/signups.parquet");
    std::fs::write(
        &signups,
        b"PAR1\x0f\x00\x01garbled footer\x0f\x00\x00\x00PAR1",
    )
    .unwrap();
    let out = train_all(&project);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(out.stderr.contains("table `signups`"), "{out:?}");
    assert!(out.stderr.contains("signups.parquet"), "{out:?}");
    assert!(
        !out.stderr.contains('\u{f}'),
        "no raw control bytes: {out:?}"
    );
}

#[test]
fn a_text_timestamp_in_the_exposures_is_blamed_on_the_exposure_source() {
    let project = Project::new();
    parquet_warehouse(
        &project.path("warehouse"),
        &[
            (
                "exposures",
                "SELECT 'v1' AS anonymous_id, '2026-01-01 10:00:00' AS timestamp, 'a_first' AS optimization_id, '{\"color\":\"red\"}' AS variant",
            ),
            ("signups", SIGNUPS),
        ],
    );
    project.write(
        "levered.yaml",
        &definitions(PLAIN_METRIC, "{table: exposures}"),
    );
    let out = project.levered(&[
        "train",
        "--optimization",
        "a_first",
        "--config",
        "levered.yaml",
        "--as-of",
        AS_OF,
    ]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(
        out.stderr
            .contains("the exposure source: column `timestamp` is text"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("CAST(timestamp AS TIMESTAMP)"),
        "{out:?}"
    );
}
