//! `levered report`: the latest stored run as a table, CSV, JSON or an HTML page, without retraining.

use crate::example::example_project;
use crate::support::{read_csv, Project};

fn trained() -> Project {
    let project = example_project();
    for as_of in ["2026-01-07T22:00:00Z", "2026-01-08T00:00:00Z"] {
        let out = project.levered(&[
            "train",
            "--all",
            "-q",
            "--config",
            "optimizations.example.yaml",
            "--as-of",
            as_of,
        ]);
        assert_eq!(out.code, 0, "{out:?}");
    }
    project
}

fn report(project: &Project, extra: &[&str]) -> crate::support::Output {
    let mut args = vec![
        "report",
        "--config",
        "optimizations.example.yaml",
        "--optimization",
        "hero",
    ];
    args.extend_from_slice(extra);
    project.levered(&args)
}

#[test]
fn the_latest_run_as_table_csv_and_json() {
    let project = trained();
    // The warehouse is not needed: the report reads only the state store.
    std::fs::remove_dir_all(project.path("fixtures/warehouse")).unwrap();
    let out = report(&project, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .starts_with("hero (run 20260108T000000Z-0002, as of 2026-01-08T00:00:00Z)"),
        "{}",
        out.stdout
    );
    assert_eq!(out.stdout.lines().count(), 2 + 9 + 1);
    assert!(
        out.stdout
            .lines()
            .last()
            .unwrap()
            .starts_with("sample ratio: "),
        "{}",
        out.stdout
    );

    let out = report(&project, &["--format", "csv"]);
    assert_eq!(out.code, 0);
    let written = std::fs::read_to_string(project.path("out/hero/report.csv")).unwrap();
    assert_eq!(
        out.stdout, written,
        "the stored report equals the report file of the run"
    );

    let out = report(&project, &["--format", "json", "--context", "*"]);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(json["run"]["run_id"], "20260108T000000Z-0002");
    assert_eq!(json["arms"].as_array().unwrap().len(), 9);
    // A MAB has only the pooled context: another is a usage error, not an empty answer.
    let out = report(&project, &["--format", "json", "--context", "country=US"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}

#[test]
fn every_report_row_names_its_optimization_run_as_of_and_metric() {
    let project = trained();
    for (run, as_of) in [
        ("20260108T000000Z-0002", "2026-01-08T00:00:00Z"),
        ("20260107T220000Z-0001", "2026-01-07T22:00:00Z"),
    ] {
        let rows = read_csv(&project.path(&format!("out/hero/runs/{run}/report.csv")));
        assert_eq!(rows.len(), 9);
        for row in rows {
            let origin = (
                &row["optimization"],
                &row["run_id"],
                &row["as_of"],
                &row["metric"],
            );
            assert_eq!(
                origin,
                (&"hero".into(), &run.into(), &as_of.into(), &"signup".into())
            );
        }
    }
}

#[test]
fn the_json_outputs_write_times_variants_and_the_phase_alike() {
    let project = trained();
    let run_json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(project.path("out/hero/runs/20260108T000000Z-0002/run.json"))
            .unwrap(),
    )
    .unwrap();
    let out = report(&project, &["--format", "json"]);
    let report_json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let out = project.levered(&[
        "history",
        "--config",
        "optimizations.example.yaml",
        "-o",
        "hero",
        "--format",
        "json",
    ]);
    let history: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let as_of = "2026-01-08T00:00:00Z";
    assert_eq!(run_json["as_of"], as_of);
    assert_eq!(report_json["run"]["as_of"], as_of);
    assert_eq!(history.as_array().unwrap().last().unwrap()["as_of"], as_of);
    let variants = [
        &run_json["allocation"][0]["variant"],
        &run_json["arms"][0]["variant"],
        &report_json["arms"][0]["variant"],
        &history[0]["variant"],
    ];
    for variant in variants {
        assert!(variant["headline"].is_string(), "{variant}");
    }
    // The phase is a value of the run, not an object holding a `phase`.
    assert!(run_json["phase"].is_string(), "{}", run_json["phase"]);
}

#[test]
fn the_html_page_is_self_contained_with_its_charts() {
    let project = trained();
    let out = report(&project, &["--html", "hero.html"]);
    assert_eq!(out.code, 0, "{out:?}");
    let html = std::fs::read_to_string(project.path("hero.html")).unwrap();
    for needle in [
        "<h1>hero</h1>",
        "95% credible interval",
        "Allocation over time",
        "P(best) over time",
        "Lift vs holdout",
        "<polyline",
        // Axis titles with units, readable dates, and the baseline's mean as a reference line.
        "signup per unit: posterior mean and 95% credible interval",
        "as of (UTC)",
        "Jan 07 22:00",
        ">100%</text>",
        "the dashed line is the baseline's mean (arm 1)",
    ] {
        assert!(html.contains(needle), "{needle}");
    }
    assert_eq!(html.matches("<svg").count(), 3);
    // The conclusion names the arm with the highest P(best) and compares it with the baseline.
    let reported = read_csv(&project.path("out/hero/report.csv"));
    let leader = reported
        .iter()
        .max_by(|a, b| {
            let p = |r: &std::collections::BTreeMap<String, String>| -> f64 {
                r["p_best"].parse().unwrap_or(-1.0)
            };
            p(a).total_cmp(&p(b))
        })
        .unwrap();
    let headline = format!(r#"<p class="headline"><b>arm {} · "#, leader["arm_id"]);
    assert!(html.contains(&headline), "{headline} in {html}");
    assert!(html.contains("over the baseline, arm 1 · Ship faster / Start free"));
    assert!(
        !html.contains("<script") && !html.contains("src=\"http") && !html.contains("href=\"http")
    );
    assert!(html.contains(&format!(
        "{:.5}",
        reported[4]["mean"].parse::<f64>().unwrap()
    )));
}

#[test]
fn without_runs_or_with_an_unknown_optimization() {
    let project = example_project();
    let out = report(&project, &[]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(
        out.stderr.contains("run levered train first"),
        "{}",
        out.stderr
    );
    let out = project.levered(&[
        "report",
        "--config",
        "optimizations.example.yaml",
        "-o",
        "nope",
    ]);
    assert_eq!(out.code, 2, "{out:?}");
}

#[test]
fn history_lists_every_run_and_arm() {
    let project = trained();
    let out = project.levered(&[
        "history",
        "--config",
        "optimizations.example.yaml",
        "--optimization",
        "hero",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "run_id,as_of,seed,context,arm_id,role,status,variant,weight,p_best,mean,ci_low,ci_high,change,srm_p_value"
    );
    assert_eq!(lines.len(), 1 + 2 * 9);
    assert!(
        lines[1].starts_with("20260107T220000Z-0001,2026-01-07T22:00:00Z,")
            && lines[1].contains(",*,1,bandit,active,"),
        "{}",
        lines[1]
    );
    let latest = read_csv(&project.path("out/hero/allocation.csv"));
    let last: Vec<&str> = lines[18].split(',').collect();
    assert_eq!(last[0], latest[8]["run_id"]);
}

#[test]
fn a_store_from_an_older_version_is_refused_read_only_with_a_hint() {
    let project = crate::support::Project::new();
    let example =
        std::fs::read_to_string(crate::support::repo().join("optimizations.example.yaml"))
            .unwrap()
            .replace("path: fixtures/warehouse", "path: warehouse");
    project.write("levered.yaml", &example);
    project.copy_example_metrics();
    std::fs::create_dir_all(project.path(".levered")).unwrap();
    let store = duckdb::Connection::open(project.path(".levered/state.duckdb")).unwrap();
    store
        .execute_batch("CREATE TABLE runs (run_id VARCHAR, optimization VARCHAR, seq BIGINT)")
        .unwrap();
    drop(store);
    let out = project.levered(&[
        "report",
        "--config",
        "levered.yaml",
        "--optimization",
        "hero",
    ]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(
        out.stderr.contains("written by an older levered"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("run levered train once"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_corrupt_value_in_the_store_is_an_error_naming_its_table_and_column() {
    let project = trained();
    let state = project.path(".levered/state.duckdb");
    let store = duckdb::Connection::open(&state).unwrap();
    store
        .execute_batch(
            "UPDATE runs SET warnings = '{\"not\": \"a list\"}'
             WHERE optimization = 'hero' AND seq = (SELECT max(seq) FROM runs WHERE optimization = 'hero')",
        )
        .unwrap();
    drop(store);
    std::fs::remove_file(project.path(".levered/state.duckdb.snapshot")).unwrap();
    let out = report(&project, &[]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(
        out.stderr
            .contains("runs.warnings of run 20260108T000000Z-0002 cannot be read"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}

#[test]
fn a_corrupt_status_or_role_is_an_error_naming_its_table_and_column_not_a_default() {
    let project = trained();
    let state = project.path(".levered/state.duckdb");
    let corrupt = |sql: &str| {
        let store = duckdb::Connection::open(&state).unwrap();
        store.execute_batch(sql).unwrap();
    };
    corrupt("UPDATE arm_reports SET role = 'spectator' WHERE optimization = 'hero'");
    std::fs::remove_file(project.path(".levered/state.duckdb.snapshot")).unwrap();
    let out = report(&project, &[]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(
        out.stderr.contains(
            "arm_reports.role of run 20260108T000000Z-0002 cannot be read: `spectator` is not a valid role"
        ),
        "{}",
        out.stderr
    );
    corrupt("UPDATE arms SET status = 'resting' WHERE optimization = 'hero' AND arm_id = 1");
    let out = project.levered(&[
        "train",
        "-q",
        "--config",
        "optimizations.example.yaml",
        "-o",
        "hero",
        "--as-of",
        "2026-01-08T01:00:00Z",
    ]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(
        out.stderr.contains(
            "arms.status of optimization hero cannot be read: `resting` is not a valid arm status"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn history_does_what_its_options_say_and_a_context_the_model_lacks_is_refused() {
    let project = trained();
    let history = |extra: &[&str]| {
        let mut args = vec![
            "history",
            "--config",
            "optimizations.example.yaml",
            "-o",
            "hero",
        ];
        args.extend_from_slice(extra);
        project.levered(&args)
    };
    let out = history(&["--format", "table"]);
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "hero: allocation history, oldest first");
    assert!(lines[1].starts_with("run_id  "), "{}", lines[1]);
    assert!(!out.stdout.contains(",bandit,"), "a table, not CSV");
    assert_eq!(lines.len(), 2 + 2 * 9, "two runs of nine arms");
    let page = project.path("history.html");
    let out = history(&["--html", page.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out:?}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"), "{}", &html[..40]);
    for command in ["report", "history"] {
        let out = project.levered(&[
            command,
            "--config",
            "optimizations.example.yaml",
            "-o",
            "hero",
            "--context",
            "country=US",
        ]);
        assert_eq!(out.code, 2, "{command}: {out:?}");
        assert!(
            out.stderr.contains("its context factors: none"),
            "{command}: {}",
            out.stderr
        );
    }
}
