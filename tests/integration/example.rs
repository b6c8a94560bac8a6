//! The bundled example: it validates, trains, and ranks the truly best arms first.

use std::path::Path;

use levered::config;
use levered::synth::{checkout_truth, hero_rate};

use crate::support::{read_csv, repo, Project};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// A copy of the example project (definitions, metric SQL, fixture warehouse) in a temporary folder.
pub fn example_project() -> Project {
    let project = Project::new();
    std::fs::copy(
        repo().join("optimizations.example.yaml"),
        project.path("optimizations.example.yaml"),
    )
    .unwrap();
    copy_dir(
        &repo().join("fixtures/warehouse"),
        &project.path("fixtures/warehouse"),
    );
    project.copy_example_metrics();
    project
}

#[test]
fn every_example_yaml_in_the_repository_validates() {
    let config =
        config::load(&repo().join("optimizations.example.yaml")).expect("the example is valid");
    assert_eq!(config.optimizations["hero"].variants.len(), 9);
    assert_eq!(config.optimizations["checkout"].variants.len(), 4);
}

#[test]
fn training_the_example_ranks_the_truly_best_arms_first() {
    let project = example_project();
    let out = train_example(&project, "2026-01-08T00:00:00Z", &[]);
    assert!(out.stderr.contains("hero: run "), "{}", out.stderr);

    let hero = read_csv(&project.path("out/hero/report.csv"));
    let best = hero
        .iter()
        .max_by(|a, b| {
            a["p_best"]
                .parse::<f64>()
                .unwrap()
                .total_cmp(&b["p_best"].parse().unwrap())
        })
        .unwrap();
    assert_eq!(
        best["variant"],
        r#"{"headline":"Save hours","cta_text":"Start free"}"#
    );
    assert!(
        hero_rate(2, 0)
            > (0..5)
                .flat_map(|h| (0..2).map(move |c| (h, c)))
                .filter(|&p| p != (2, 0))
                .map(|(h, c)| hero_rate(h, c))
                .fold(0.0, f64::max)
    );
    assert!(best["p_best"].parse::<f64>().unwrap() > 0.9, "{best:?}");

    let checkout = read_csv(&project.path("out/checkout/report.csv"));
    let best = checkout
        .iter()
        .max_by(|a, b| {
            a["mean"]
                .parse::<f64>()
                .unwrap()
                .total_cmp(&b["mean"].parse().unwrap())
        })
        .unwrap();
    let (rate, order) = checkout_truth(1, 1);
    assert!(rate * order > checkout_truth(0, 1).0 * checkout_truth(0, 1).1);
    assert_eq!(
        best["variant"],
        r#"{"flow":"one_page","price_display":"annual"}"#
    );

    let allocation = read_csv(&project.path("out/hero/allocation.csv"));
    assert_eq!(allocation.len(), 9);
    let total: f64 = allocation
        .iter()
        .map(|r| r["weight"].parse::<f64>().unwrap())
        .sum();
    assert!((total - 1.0).abs() < 1e-12);
    for column in [
        "optimization",
        "run_id",
        "trained_at",
        "context",
        "arm_id",
        "role",
        "variant",
        "weight",
        "status",
    ] {
        assert!(allocation[0].contains_key(column), "{column}");
    }
    let run_id = &allocation[0]["run_id"];
    for file in ["allocation.csv", "report.csv", "run.json"] {
        assert!(
            project
                .path(&format!("out/hero/runs/{run_id}/{file}"))
                .is_file(),
            "{file}"
        );
    }
}

/// docs/own-warehouse.md's example: `create.sql` (with `edit` applied) builds the warehouse beside
/// the guide's definitions; returns the project.
fn own_warehouse(edit: impl Fn(String) -> String) -> Project {
    let project = Project::new();
    let folder = repo().join("examples/own-warehouse");
    std::fs::copy(
        folder.join("optimizations.yaml"),
        project.path("optimizations.yaml"),
    )
    .unwrap();
    let sql = edit(std::fs::read_to_string(folder.join("create.sql")).unwrap());
    let warehouse = duckdb::Connection::open(project.path("warehouse.duckdb")).unwrap();
    warehouse.execute_batch(&sql).unwrap();
    project
}

/// Runs `levered <command> --config optimizations.yaml --as-of <the guide's time>`, checks its exit
/// code and returns its output.
fn guide_run(project: &Project, command: &[&str], code: i32) -> String {
    let mut args = command.to_vec();
    args.extend([
        "--config",
        "optimizations.yaml",
        "--as-of",
        "2026-03-04T04:00:00Z",
    ]);
    let out = project.levered(&args);
    assert_eq!(out.code, code, "{out:?}");
    format!("{}{}", out.stdout, out.stderr)
}

#[test]
fn the_own_warehouse_guide_runs_as_written() {
    let guide = std::fs::read_to_string(repo().join("docs/own-warehouse.md")).unwrap();
    let shown = |output: &str| {
        for line in output.lines() {
            assert!(
                guide.contains(line),
                "docs/own-warehouse.md does not show `{line}`"
            );
        }
    };
    let project = own_warehouse(|sql| sql);
    shown(&guide_run(&project, &["validate", "--sample"], 0));
    let trained = guide_run(&project, &["train", "--all"], 0);
    assert!(trained.contains("2891 mature units"), "{trained}");
    shown(&trained);

    let renamed = own_warehouse(|sql| sql.replace("'signup_button' AS", "'signup-button' AS"));
    let out = guide_run(&renamed, &["train", "--all"], 0);
    assert!(
        out.contains("other optimization ids in the source"),
        "{out}"
    );
    shown(out.lines().next().unwrap());

    let misspelt = own_warehouse(|sql| sql.replace("\"color\"", "\"colour\""));
    let out = guide_run(&misspelt, &["train", "--all"], 0);
    let warning = out.lines().find(|l| l.contains("unknown_variant")).unwrap();
    shown(warning);
}

/// `levered train --all` of the example as of `as_of`, which succeeds.
fn train_example(project: &Project, as_of: &str, extra: &[&str]) -> crate::support::Output {
    let out = run_example(project, as_of, extra);
    assert_eq!(out.code, 0, "{out:?}");
    out
}

fn run_example(project: &Project, as_of: &str, extra: &[&str]) -> crate::support::Output {
    let mut args = vec![
        "train",
        "--all",
        "--config",
        "optimizations.example.yaml",
        "--as-of",
        as_of,
    ];
    args.extend(extra);
    project.levered(&args)
}

/// docs/design.md §3.20 and §3.13: under `-q` an hourly run does not repeat the last run's
/// unmatched-rows warning, and a backfill does not warn of the rows after its `as_of`.
#[test]
fn a_quiet_cron_prints_only_what_needs_action() {
    let project = example_project();
    let first = train_example(&project, "2026-01-07T00:00:00Z", &["-q"]);
    let unmatched = "hero: 112 exposure rows in the scanned range were not counted (null_id: 60, unknown_variant: 52)";
    assert!(first.stderr.contains(unmatched), "{}", first.stderr);
    assert!(
        !first.stderr.contains("future"),
        "a backfill: {}",
        first.stderr
    );
    let run: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(project.path("out/hero/runs/20260107T000000Z-0001/run.json"))
            .unwrap(),
    )
    .unwrap();
    assert!(
        run["scan"]["unmatched"]["future"].as_i64().unwrap() > 0,
        "{run}"
    );

    let quiet = train_example(&project, "2026-01-07T01:00:00Z", &["-q"]);
    assert_eq!(quiet.stderr, "", "the same reasons as the last run");
    let loud = train_example(&project, "2026-01-07T02:00:00Z", &[]);
    assert!(
        loud.stderr
            .contains("hero: 26 exposure rows in the scanned range were not counted"),
        "{}",
        loud.stderr
    );
}

#[test]
fn a_stale_warehouse_fails_the_run_under_on_stale_fail() {
    let project = example_project();
    let example = std::fs::read_to_string(project.path("optimizations.example.yaml")).unwrap();
    let failing = example.replace(
        "  stale_after: 6h\n",
        "  stale_after: 6h\n  on_stale: fail\n",
    );
    assert_ne!(failing, example);
    project.write("optimizations.example.yaml", &failing);
    let out = run_example(&project, "2026-01-09T00:00:00Z", &[]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(
        out.stderr.contains("error: hero: training failed: the newest exposure (2026-01-07T23:59:59Z) is older than warehouse.stale_after (6h)"),
        "{}",
        out.stderr
    );
    assert!(!project.path("out").exists(), "nothing is written");
    let fresh = train_example(&project, "2026-01-08T00:00:00Z", &[]);
    assert!(fresh.stderr.contains("wrote out/hero"), "{}", fresh.stderr);
}
