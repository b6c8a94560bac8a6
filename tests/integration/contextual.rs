//! Contextual bandits: per-context posteriors shrunk toward each arm's pooled posterior.

use std::collections::BTreeMap;

use crate::support::{read_csv, Project};

/// `(context JSON, arm headline, units, conversions, holdout)`; exposures in the first hour of
/// 2026-03-01, each converter signs up a minute later.
fn warehouse(project: &Project, cells: &[(&str, &str, i64, i64, bool)]) {
    let mut sql = String::from(
        "CREATE TABLE exposures (anonymous_id VARCHAR, timestamp TIMESTAMP, optimization_id VARCHAR,
                                 variant VARCHAR, context VARCHAR, holdout BOOLEAN);
         CREATE TABLE signups (anonymous_id VARCHAR, created_at TIMESTAMP);\n",
    );
    for (i, (context, headline, units, conversions, holdout)) in cells.iter().enumerate() {
        sql.push_str(&format!(
            "INSERT INTO exposures SELECT 'c{i}-' || n, TIMESTAMP '2026-03-01' + INTERVAL (n % 3000) SECOND,
                    'hero', '{{\"headline\":\"{headline}\"}}', '{context}', {holdout} FROM range({units}) AS t(n);
             INSERT INTO signups SELECT 'c{i}-' || n, TIMESTAMP '2026-03-01' + INTERVAL (n % 3000 + 60) SECOND
                    FROM range({conversions}) AS t(n);\n"
        ));
    }
    project.warehouse(&sql);
}

fn definitions(max_contexts: u32) -> String {
    format!(
        r#"
warehouse: {{path: warehouse.duckdb}}
metrics:
  signup: {{type: bool, sql: "SELECT anonymous_id, created_at AS timestamp FROM signups"}}
optimizations:
  hero:
    status: live
    design_factors: {{headline: [A, B]}}
    context_factors: [country, device]
    reward: signup
    exposures: {{table: exposures}}
    attribution: {{conversion_window: 1h}}
    model: {{kind: cmab, burn_in: 0h, min_units_per_arm: 30, floor: 0.01, seed: 5, max_contexts: {max_contexts}}}
"#
    )
}

const US: &str = r#"{"device":"mobile","country":"US"}"#;
const DE: &str = r#"{"country":"DE","device":"desktop"}"#;
const FR: &str = r#"{"country":"FR","device":"mobile"}"#;

fn trained(max_contexts: u32) -> (Project, Vec<BTreeMap<String, String>>) {
    let project = Project::new();
    warehouse(
        &project,
        &[
            (US, "A", 4000, 400, false),
            (US, "B", 4000, 800, false),
            (DE, "A", 4000, 800, false),
            (DE, "B", 4000, 400, false),
            (FR, "A", 40, 2, false),
            (FR, "B", 40, 10, false),
        ],
    );
    project.write("levered.yaml", &definitions(max_contexts));
    let out = project.levered(&[
        "train",
        "--all",
        "--config",
        "levered.yaml",
        "--as-of",
        "2026-03-01T03:00:00Z",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    let report = read_csv(&project.path("out/hero/report.csv"));
    (project, report)
}

fn row<'a>(
    report: &'a [BTreeMap<String, String>],
    context: &str,
    arm: &str,
) -> &'a BTreeMap<String, String> {
    report
        .iter()
        .find(|r| r["context"] == context && r["arm_id"] == arm)
        .unwrap_or_else(|| panic!("no row {context} {arm}"))
}

/// `levered assign` for visitor `v7` with `--context` values (and `--at TIME` passed through).
fn assign(project: &Project, given: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "assign",
        "--config",
        "levered.yaml",
        "--optimization",
        "hero",
        "--unit",
        "v7",
    ];
    let mut rest = given.iter();
    while let Some(g) = rest.next() {
        if *g == "--at" {
            args.extend(["--at", rest.next().expect("a time after --at")]);
        } else {
            args.extend(["--context", g]);
        }
    }
    args.extend(["--format", "json"]);
    let out = project.levered(&args);
    assert_eq!(out.code, 0, "{out:?}");
    serde_json::from_str(&out.stdout).unwrap()
}

fn number(row: &BTreeMap<String, String>, column: &str) -> f64 {
    row[column]
        .parse()
        .unwrap_or_else(|_| panic!("{column} in {row:?}"))
}

#[test]
fn a_large_context_with_a_different_best_arm_gets_its_own_best_arm() {
    let (_project, report) = trained(50);
    let us = "country=US|device=mobile";
    let de = "country=DE|device=desktop";
    assert!(
        number(row(&report, us, "2"), "p_best") > 0.999,
        "B wins in the US"
    );
    assert!(
        number(row(&report, de, "1"), "p_best") > 0.999,
        "A wins in DE"
    );
    assert!(number(row(&report, us, "2"), "weight_new") > 0.9);
    assert!(number(row(&report, de, "1"), "weight_new") > 0.9);
    // Pooled, the arms are close (1,202 vs 1,210 of 8,040): the `*` rows hedge.
    let pooled = number(row(&report, "*", "1"), "weight_new");
    assert!(pooled > 0.2 && pooled < 0.8, "{pooled}");
}

#[test]
fn the_html_page_has_one_chart_per_context_and_names_each_leader() {
    let (project, _report) = trained(50);
    let out = project.levered(&[
        "report",
        "--config",
        "levered.yaml",
        "-o",
        "hero",
        "--html",
        "hero.html",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    let html = std::fs::read_to_string(project.path("hero.html")).unwrap();
    assert!(html.contains("<h2>Per context (3 contexts)</h2>"), "{html}");
    assert_eq!(html.matches("<figure>").count(), 3);
    // B leads in the US, A in DE; FR's 80 visitors are shrunk toward the pooled arms.
    assert!(html.contains("<b>country=US · device=mobile</b> · 8000 units · leads: arm 2"));
    assert!(html.contains("<b>country=DE · device=desktop</b> · 8000 units · leads: arm 1"));
    assert!(html.contains("Per context, arm "), "{html}");
    // One run: the lines over time wait for a second run instead of drawing lone dots.
    assert_eq!(html.matches("One run so far").count(), 2);
    assert_eq!(html.matches("<svg").count(), 1 + 3);
    // Every context's rows fold away under its own heading.
    assert_eq!(html.matches("<details>").count(), 3);
}

#[test]
fn a_small_context_is_shrunk_toward_the_pooled_arm() {
    let (_project, report) = trained(50);
    let fr = "country=FR|device=mobile";
    for (arm, raw) in [("1", 2.0 / 40.0), ("2", 10.0 / 40.0)] {
        let cell = number(row(&report, fr, arm), "mean");
        let pooled = number(row(&report, "*", arm), "mean");
        let (low, high) = if raw < pooled {
            (raw, pooled)
        } else {
            (pooled, raw)
        };
        assert!(
            low < cell && cell < high,
            "arm {arm}: the cell mean {cell} lies between its raw rate {raw} and the pooled {pooled}"
        );
        assert_eq!(number(row(&report, fr, arm), "units"), 40.0);
    }
}

#[test]
fn the_context_cap_sends_the_rarest_contexts_to_the_pooled_rows() {
    let (project, report) = trained(2);
    let contexts: std::collections::BTreeSet<&str> =
        report.iter().map(|r| r["context"].as_str()).collect();
    assert_eq!(
        contexts.into_iter().collect::<Vec<_>>(),
        ["*", "country=DE|device=desktop", "country=US|device=mobile"]
    );
    let allocation = read_csv(&project.path("out/hero/allocation.csv"));
    for context in ["*", "country=DE|device=desktop", "country=US|device=mobile"] {
        let total: f64 = allocation
            .iter()
            .filter(|r| r["context"] == context)
            .map(|r| r["weight"].parse::<f64>().unwrap())
            .sum();
        assert!((total - 1.0).abs() < 1e-12, "{context}: {total}");
    }
    // A visitor from France (or anywhere unseen) is served the pooled rows.
    let assignment = assign(
        &project,
        &[
            "country=FR",
            "device=mobile",
            "--at",
            "2026-03-01T04:10:00Z",
        ],
    );
    assert_eq!(assignment["context"], "*");
    assert_eq!(assignment["batch_start"], 1772337600);
}

#[test]
fn a_context_without_data_is_served_the_pooled_allocation_and_a_known_one_its_own() {
    let (project, _) = trained(50);
    assert_eq!(
        assign(&project, &["country=JP", "device=tv"])["context"],
        "*"
    );
    assert_eq!(assign(&project, &["country=JP"])["context"], "*");
    assert_eq!(
        assign(&project, &["device=mobile", "country=US"])["context"],
        "country=US|device=mobile",
        "the key follows context_factors order, whatever the order given"
    );
}

#[test]
fn each_context_has_its_holdout_row_and_its_own_lift() {
    let project = Project::new();
    warehouse(
        &project,
        &[
            (US, "A", 2000, 200, false),
            (US, "B", 2000, 400, false),
            (US, "A", 500, 50, true),
            (DE, "A", 2000, 400, false),
            (DE, "B", 2000, 200, false),
            (DE, "A", 500, 100, true),
        ],
    );
    project.write(
        "levered.yaml",
        &definitions(50).replace(
            "max_contexts: 50}",
            "max_contexts: 50, holdout: {share: 0.1}}",
        ),
    );
    let out = project.levered(&[
        "train",
        "--all",
        "--config",
        "levered.yaml",
        "--as-of",
        "2026-03-01T03:00:00Z",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    let report = read_csv(&project.path("out/hero/report.csv"));
    let us = "country=US|device=mobile";
    let de = "country=DE|device=desktop";
    for (context, units) in [(us, 500.0), (de, 500.0), ("*", 1000.0)] {
        let holdout = row(&report, context, "holdout");
        assert_eq!(holdout["role"], "holdout");
        assert_eq!(number(holdout, "units"), units, "{context}");
        assert_eq!(
            holdout["weight_new"], "",
            "weights are blank on the holdout's report row"
        );
        let served = read_csv(&project.path("out/hero/allocation.csv"))
            .into_iter()
            .find(|r| r["context"] == context && r["role"] == "holdout")
            .expect("a holdout row per context in the allocation");
        assert_eq!(served["weight"].parse::<f64>().unwrap(), 0.1, "{context}");
    }
    // One period, so the relative lift is the plain ratio of rates minus 1, per context:
    // US: B converts 20% against the holdout's 10%; DE: 10% against 20%.
    let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
    assert!(close(number(row(&report, us, "2"), "lift_vs_holdout"), 1.0));
    assert!(close(
        number(row(&report, de, "2"), "lift_vs_holdout"),
        -0.5
    ));
    assert!(close(number(row(&report, us, "1"), "lift_vs_holdout"), 0.0));
    let interval = row(&report, us, "2");
    assert!(number(interval, "lift_ci_low") < 1.0 && 1.0 < number(interval, "lift_ci_high"));
}
