//! Training hour by hour gives exactly what one `--full` run gives (README, "What `train` does", step 3).

use chrono::{DateTime, TimeDelta, Utc};
use levered::report::RunReport;

use crate::support::{train_all, Project};

fn definitions(state: &str, touch: &str) -> String {
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
    design_factors:
      headline: [Ship faster, Built for teams, Save hours, Own your data, Open source]
      cta_text: [Start free, Book a demo]
    reward: signup
    exposures: {{table: exposures}}
    attribution: {{type: {touch}, conversion_window: 6h, late_grace: 1h}}
    model: {{kind: mab, batch: 1h, burn_in: 0h, min_units_per_arm: 0, seed: 1}}
  checkout:
    status: live
    design_factors: {{flow: [multi_step, one_page], price_display: [monthly, annual]}}
    reward: revenue
    exposures: {{table: exposures}}
    attribution: {{type: {touch}, conversion_window: 3h}}
    model: {{kind: mab, batch: 2h, seed: 1}}
"#
    )
}

fn run(project: &Project, yaml_name: &str, as_of: DateTime<Utc>, full: bool) -> Vec<RunReport> {
    train_all(&project.path(yaml_name), as_of, full)
}

fn check(touch: &str) {
    let project = Project::new();
    levered::synth::write_example_warehouse(&project.path("warehouse"), 6_000, 2, 5)
        .expect("a warehouse");
    project.write("hourly.yaml", &definitions("hourly.duckdb", touch));
    project.write("full.yaml", &definitions("full.duckdb", touch));
    let end: DateTime<Utc> = "2026-01-08T03:00:00Z".parse().unwrap();
    let mut as_of = end - TimeDelta::hours(30);
    let mut hourly = Vec::new();
    let mut incremental_runs = 0;
    while as_of <= end {
        hourly = run(&project, "hourly.yaml", as_of, false);
        incremental_runs += hourly
            .iter()
            .filter(|r| r.scan.mode == "incremental")
            .count();
        as_of += TimeDelta::minutes(60);
    }
    assert!(
        incremental_runs > 40,
        "the hourly runs were incremental ({incremental_runs})"
    );
    let full = run(&project, "full.yaml", end, true);
    for (h, f) in hourly.iter().zip(&full) {
        assert_eq!(h.optimization, f.optimization);
        assert!(h.scan.mature_units > 1000, "{} units", h.scan.mature_units);
        for (a, b) in h.arms.iter().zip(&f.arms) {
            assert_eq!(
                (a.arm_id, a.units, a.conversions),
                (b.arm_id, b.units, b.conversions)
            );
            let tolerance = 1e-9 * b.alpha.abs().max(b.beta.abs()).max(1.0);
            assert!(
                (a.alpha - b.alpha).abs() <= tolerance && (a.beta - b.beta).abs() <= tolerance,
                "{a:?} {b:?}"
            );
            assert!(
                (a.mean - b.mean).abs() <= 1e-9 * b.mean.abs().max(1.0),
                "{a:?} {b:?}"
            );
        }
    }
}

#[test]
fn hourly_last_touch_runs_equal_a_full_run() {
    check("last_touch");
}

#[test]
fn hourly_first_touch_runs_equal_a_full_run() {
    check("first_touch");
}
