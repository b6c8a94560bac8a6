//! `levered simulate`: the real pipeline in a loop, deterministic for a seed, and a bandit that
//! learns beats an A/B split.

use crate::support::{read_csv, Project};

const SCENARIO: &str = r#"
name: small
seed: 3
horizon: 36h
repetitions: 1
visitors_per_hour: 150
policies: [bandit, uniform]
delay: {max: 30m}
optimization:
  design_factors: {headline: [A, B, C]}
  attribution: {conversion_window: 1h, late_grace: 0h}
  model: {kind: mab, burn_in: 2h, min_units_per_arm: 20, floor: 0.02, holdout: {share: 0.1}}
arms:
  - {variant: {headline: A}, rate: 0.05}
  - {variant: {headline: B}, rate: 0.20}
  - {variant: {headline: C}, rate: 0.08}
"#;

#[test]
fn a_simulation_is_deterministic_and_the_bandit_beats_the_split() {
    let project = Project::new();
    project.write("small.yaml", SCENARIO);
    let mut summaries = Vec::new();
    for (out, fast) in [("one", false), ("two", false), ("fast", true)] {
        let mut args = vec![
            "simulate",
            "small.yaml",
            "--out",
            out,
            "--jobs",
            "2",
            "--html",
            "chart.html",
        ];
        if fast {
            args.push("--fast");
        }
        let run = project.levered(&args);
        assert_eq!(run.code, 0, "{run:?}");
        summaries
            .push(std::fs::read_to_string(project.path(&format!("{out}/summary.csv"))).unwrap());
        assert_eq!(
            std::fs::read_to_string(project.path(&format!("{out}/hourly.csv")))
                .unwrap()
                .lines()
                .count(),
            1 + 2 * 36
        );
    }
    assert_eq!(
        summaries[0], summaries[1],
        "the same seed gives the same simulation"
    );
    assert_eq!(
        summaries[0], summaries[2],
        "the fast path (no SQL) gives the same allocations, hence the same simulation"
    );
    assert_eq!(
        std::fs::read_to_string(project.path("one/hourly.csv")).unwrap(),
        std::fs::read_to_string(project.path("fast/hourly.csv")).unwrap()
    );
    let rows = read_csv(&project.path("one/summary.csv"));
    let regret = |policy: &str| -> f64 {
        rows.iter().find(|r| r["policy"] == policy).unwrap()["regret_mean"]
            .parse()
            .unwrap()
    };
    // The split loses (0.20 − mean(0.05, 0.20, 0.08)) · 150 · 36 = 486 conversions in expectation.
    assert!(
        (regret("uniform") - 486.0).abs() < 40.0,
        "{}",
        regret("uniform")
    );
    assert!(regret("bandit") < 0.5 * regret("uniform"), "{rows:?}");
    let bandit = rows.iter().find(|r| r["policy"] == "bandit").unwrap();
    let weights: std::collections::BTreeMap<String, f64> =
        serde_json::from_str(&bandit["final_weights"]).unwrap();
    let best = weights.iter().max_by(|a, b| a.1.total_cmp(b.1)).unwrap();
    assert_eq!(best.0, r#"{"headline":"B"}"#, "{weights:?}");
    let page = std::fs::read_to_string(project.path("chart.html")).unwrap();
    for needle in [
        "Cumulative regret (conversions lost",
        "best-arm share",
        "time since the start",
        // Each policy in its own colour on every page, and the spread as a shaded band.
        r##"<polyline fill="none" stroke="#4e79a7""##,
        r##"<polyline fill="none" stroke="#e15759""##,
        "<polygon",
        "Over 1 repetition of 36 hours",
    ] {
        assert!(page.contains(needle), "{needle}");
    }
    assert!(
        !page.contains("served a harmful arm"),
        "no harm columns without guardrails"
    );
}

#[test]
fn the_page_marks_the_drifts_of_the_scenario() {
    let project = Project::new();
    let scenario =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/scenarios/drift.yaml");
    let run = project.levered(&[
        "simulate",
        scenario.to_str().unwrap(),
        "--fast",
        "--repetitions",
        "1",
        "--out",
        "out",
        "--html",
        "drift.html",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let page = std::fs::read_to_string(project.path("drift.html")).unwrap();
    // The drift is at 2d: a dashed vertical line at hour 48 of 120, labelled.
    assert_eq!(
        page.matches(r#"class="marker-label">drift 1</text>"#)
            .count(),
        2
    );
    assert!(page.contains("Dashed lines labelled “drift” mark the changes of the truth."));
}

#[test]
fn a_broken_scenario_is_a_definition_error() {
    let project = Project::new();
    project.write("bad.yaml", &SCENARIO.replace("rate: 0.20", "rate: 1.20"));
    let run = project.levered(&["simulate", "bad.yaml"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr.contains("rate 1.2 is not in [0, 1]"),
        "{}",
        run.stderr
    );
    project.write(
        "none.yaml",
        &SCENARIO.replace("repetitions: 1", "repetitions: 0"),
    );
    let run = project.levered(&["simulate", "none.yaml"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr.contains("repetitions: at least 1"),
        "{}",
        run.stderr
    );
}

#[test]
fn every_example_scenario_loads_and_its_optimization_is_valid() {
    let folder = crate::support::repo().join("examples/scenarios");
    let mut seen = 0;
    for entry in std::fs::read_dir(&folder).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let scenario = levered::simulate::Scenario::load(&path).unwrap();
            for policy in &scenario.policies {
                let text = scenario.definitions(*policy);
                levered::config::parse(&folder.join("levered.yaml"), &text)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
            seen += 1;
        }
    }
    assert!(seen >= 3, "{seen} scenarios");
}

/// B wins the most sign-ups and quadruples refunds.
const GUARDRAIL_SCENARIO: &str = r#"
name: guarded
seed: 3
horizon: 36h
repetitions: 2
visitors_per_hour: 150
policies: [bandit, unguarded]
optimization:
  design_factors: {headline: [A, B, C]}
  attribution: {conversion_window: 2h}
  model: {kind: mab, burn_in: 6h, min_units_per_arm: 30, floor: 0.01, drop: {below: 0.0, incubation: 12h}}
guardrails:
  - {metric: refunds, better: lower, tolerance: {relative: 0.25}}
arms:
  - {variant: {headline: A}, rate: 0.05, guardrails: {refunds: 0.02}}
  - {variant: {headline: B}, rate: 0.20, guardrails: {refunds: 0.08}}
  - {variant: {headline: C}, rate: 0.08, guardrails: {refunds: 0.02}}
"#;

#[test]
fn a_guardrail_keeps_the_harmful_winner_at_the_floor_and_the_harm_served_is_reported() {
    let project = Project::new();
    project.write("guarded.yaml", GUARDRAIL_SCENARIO);
    for (out, fast) in [("sql", false), ("fast", true)] {
        let mut args = vec!["simulate", "guarded.yaml", "--out", out];
        if fast {
            args.push("--fast");
        } else {
            args.extend(["--html", "guarded.html"]);
        }
        let run = project.levered(&args);
        assert_eq!(run.code, 0, "{run:?}");
        assert!(
            run.stdout.contains("guardrail harm served"),
            "{}",
            run.stdout
        );
    }
    let summary = std::fs::read_to_string(project.path("sql/summary.csv")).unwrap();
    assert_eq!(
        summary,
        std::fs::read_to_string(project.path("fast/summary.csv")).unwrap(),
        "the fast path counts the guardrail events as the SQL does"
    );
    let rows = read_csv(&project.path("sql/summary.csv"));
    let row = |policy: &str| rows.iter().find(|r| r["policy"] == policy).unwrap();
    let number = |policy: &str, column: &str| -> f64 { row(policy)[column].parse().unwrap() };
    // With the guardrail, B ends at the floor or dropped in every repetition; without, it wins.
    assert!(number("bandit", "harmful_weight_max") <= 0.01, "{summary}");
    let weights: std::collections::BTreeMap<String, f64> =
        serde_json::from_str(&row("unguarded")["final_weights"]).unwrap();
    assert!(weights[r#"{"headline":"B"}"#] > 0.5, "{weights:?}");
    assert!(number("unguarded", "harm_served") > 3.0 * number("bandit", "harm_served"));
    assert!(
        number("bandit", "harm_served") > 0.0,
        "B served before it was found harmful"
    );
    // The page's table has the harm columns, with the summary's figures.
    let page = std::fs::read_to_string(project.path("guarded.html")).unwrap();
    let served = format!(
        "<td>{:.2}%</td>",
        number("unguarded", "harm_served") * 100.0
    );
    assert!(page.contains("<th>served a harmful arm</th>"), "{page}");
    assert!(page.contains(&served), "{served} in {page}");
}
