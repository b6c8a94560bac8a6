//! Coframe-style dynamics in a closed loop: a simulated serving side reads each run's
//! `allocation.csv`, serves visitors with it, and writes exposures and conversions that the next
//! hourly run trains on.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use levered::domain::{ArmId, Role};
use levered::report::RunReport;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::support::{read_csv, train_all, Project};

const SCHEMA: &str = "
CREATE TABLE exposures (anonymous_id VARCHAR, timestamp TIMESTAMP, optimization_id VARCHAR,
                        variant VARCHAR, holdout BOOLEAN);
CREATE TABLE signups (anonymous_id VARCHAR, created_at TIMESTAMP);";

fn definitions(model: &str, extra: &str) -> String {
    format!(
        r#"
warehouse: {{path: warehouse.duckdb}}
metrics:
  signup:
    type: bool
    sql: SELECT anonymous_id, created_at AS timestamp FROM signups WHERE created_at >= $start AND created_at < $end
optimizations:
  hero:
    status: live
    design_factors:
      headline: [A, B, C, D]
      cta: [X, Y]
    reward: signup
    exposures: {{table: exposures}}
    attribution: {{conversion_window: 1h, late_grace: 0h}}
    model: {{kind: mab, burn_in: 0h, min_units_per_arm: 50, floor: 0.01, seed: 3, {model}}}
{extra}
"#
    )
}

/// A served visitor: which row of the allocation, and whether it converted.
struct Visit {
    variant: String,
    holdout: bool,
    converted: bool,
}

struct Loop {
    project: Project,
    rng: ChaCha8Rng,
    next_visitor: u64,
}

impl Loop {
    fn new(yaml: &str) -> Loop {
        let project = Project::new();
        project.warehouse(SCHEMA);
        project.write("levered.yaml", yaml);
        Loop {
            project,
            rng: ChaCha8Rng::seed_from_u64(11),
            next_visitor: 0,
        }
    }

    fn train(&self, as_of: DateTime<Utc>) -> RunReport {
        let mut reports = train_all(&self.project.path("levered.yaml"), as_of, false);
        reports.pop().expect("one optimization")
    }

    /// Trains through the command line, as cron does.
    fn train_cli(&self, as_of: &str) -> crate::support::Output {
        self.project.levered(&[
            "train",
            "--all",
            "--config",
            "levered.yaml",
            "--as-of",
            as_of,
        ])
    }

    /// The current allocation: (variant JSON, weight, holdout row).
    fn allocation(&self) -> Vec<(String, f64, bool)> {
        read_csv(&self.project.path("out/hero/allocation.csv"))
            .into_iter()
            .map(|row| {
                (
                    row["variant"].clone(),
                    row["weight"].parse().unwrap(),
                    row["role"] == "holdout",
                )
            })
            .collect()
    }

    /// Serves `n` visitors in the hour starting at `start` with the current allocation.
    fn serve(&mut self, start: DateTime<Utc>, n: usize, rate: impl Fn(&str, bool) -> f64) {
        let rows = self.allocation();
        let visits: Vec<Visit> = (0..n)
            .map(|_| {
                let u: f64 = self.rng.random();
                let mut acc = 0.0;
                let row = rows
                    .iter()
                    .find(|(_, w, _)| {
                        acc += w;
                        u < acc
                    })
                    .unwrap_or_else(|| rows.iter().rfind(|r| r.1 > 0.0).unwrap());
                let converted = self.rng.random::<f64>() < rate(&row.0, row.2);
                Visit {
                    variant: row.0.clone(),
                    holdout: row.2,
                    converted,
                }
            })
            .collect();
        self.write(start, &visits);
    }

    fn write(&mut self, start: DateTime<Utc>, visits: &[Visit]) {
        let connection =
            duckdb::Connection::open(self.project.path("warehouse.duckdb")).expect("the warehouse");
        let mut exposures = connection.appender("exposures").unwrap();
        let mut conversions = Vec::new();
        for (i, visit) in visits.iter().enumerate() {
            let id = format!("v{}", self.next_visitor);
            self.next_visitor += 1;
            let at = start + TimeDelta::milliseconds((i as i64 * 3_600_000) / visits.len() as i64);
            exposures
                .append_row(duckdb::params![
                    id,
                    timestamp(at),
                    "hero",
                    visit.variant,
                    visit.holdout
                ])
                .unwrap();
            if visit.converted {
                conversions.push((id, at + TimeDelta::minutes(1)));
            }
        }
        exposures.flush().unwrap();
        drop(exposures);
        let mut signups = connection.appender("signups").unwrap();
        for (id, at) in conversions {
            signups
                .append_row(duckdb::params![id, timestamp(at)])
                .unwrap();
        }
        signups.flush().unwrap();
    }
}

fn timestamp(at: DateTime<Utc>) -> duckdb::types::Value {
    duckdb::types::Value::Timestamp(duckdb::types::TimeUnit::Microsecond, at.timestamp_micros())
}

fn levels(variant: &str) -> (String, String) {
    let v: serde_json::Value = serde_json::from_str(variant).unwrap();
    (
        v["headline"].as_str().unwrap().to_string(),
        v["cta"].as_str().unwrap().to_string(),
    )
}

/// Additive truth: headline A .10, B .02, C .20, D .03; cta Y adds .04.
fn additive_rate(variant: &str, _holdout: bool) -> f64 {
    let (headline, cta) = levels(variant);
    let h = match headline.as_str() {
        "A" => 0.10,
        "B" => 0.02,
        "C" => 0.20,
        _ => 0.03,
    };
    h + if cta == "Y" { 0.04 } else { 0.0 }
}

fn statuses(report: &RunReport) -> BTreeMap<u32, String> {
    report
        .arms
        .iter()
        .filter(|a| a.role == Role::Bandit)
        .map(|a| (a.arm_id.arm().unwrap(), a.status.to_string()))
        .collect()
}

#[test]
fn drop_generate_incubate_cycle_never_brings_a_dropped_arm_back() {
    let yaml = definitions(
        "drop: {below: 0.05, incubation: 12h}",
        "    generation: {strategy: factorial, max_active_arms: 4}",
    );
    let mut sim = Loop::new(&yaml);
    let start: DateTime<Utc> = "2026-03-01T00:00:00Z".parse().unwrap();
    let first = sim.train(start);
    let initial = statuses(&first);
    assert_eq!(
        initial.values().collect::<Vec<_>>(),
        [
            "incubating",
            "incubating",
            "incubating",
            "incubating",
            "proposed",
            "proposed",
            "proposed",
            "proposed"
        ],
        "the first 4 arms in level order start; the rest wait"
    );
    let mut dropped_ever: BTreeMap<u32, String> = BTreeMap::new();
    let mut started_later = Vec::new();
    let mut last = first;
    for hour in 0..72 {
        let at = start + TimeDelta::hours(hour);
        sim.serve(at, 600, additive_rate);
        last = sim.train(at + TimeDelta::hours(1));
        let now = statuses(&last);
        for (id, status) in &now {
            if dropped_ever.contains_key(id) {
                assert_eq!(status, "dropped", "arm {id} came back after its drop");
            }
        }
        for change in &last.diagnostics.arm_changes {
            match change.status.as_str() {
                "dropped" => {
                    dropped_ever.insert(change.arm_id, change.reason.clone());
                }
                "incubating" => started_later.push(change.arm_id),
                _ => {}
            }
        }
        let weights: f64 = last.allocation.iter().map(|a| a.weight).sum();
        assert!((weights - 1.0).abs() < 1e-12);
        let serving = now
            .values()
            .filter(|s| *s == "active" || *s == "incubating")
            .count();
        assert!((2..=4).contains(&serving), "{serving} serving arms");
    }
    // Arms 3 (B-X) and 4 (B-Y) are far behind and go first; the proposed arm of the best unseen
    // cta level (C-Y or D-Y, both predicted alike: the additive model knows Y, not C or D) starts.
    assert!(dropped_ever.contains_key(&3), "{dropped_ever:?}");
    assert!(
        !dropped_ever.contains_key(&1),
        "the baseline is never dropped"
    );
    assert!(
        started_later.contains(&6),
        "C-Y (arm 6) started when a place was free: {started_later:?}"
    );
    assert!(
        last.arms
            .iter()
            .all(|a| a.arm_id == ArmId::Holdout || a.arm_id.arm().unwrap() <= 8),
        "no id beyond the 8 defined arms"
    );
    let best = last
        .arms
        .iter()
        .max_by(|a, b| a.p_best.unwrap_or(0.0).total_cmp(&b.p_best.unwrap_or(0.0)))
        .unwrap();
    assert_eq!(
        levels(&best.variant).0,
        "C",
        "the generated C arms win: {best:?}"
    );
    // Every change is in the store's history with its reason.
    let history = sim.project.levered(&[
        "history",
        "--optimization",
        "hero",
        "--config",
        "levered.yaml",
        "--format",
        "json",
    ]);
    assert_eq!(history.code, 0, "{history:?}");
    assert!(history.stdout.contains("dropped"), "{}", history.stdout);
}

/// Deterministic visits: `n` units of which exactly `converted` convert.
fn visits(variant: &str, holdout: bool, n: usize, converted: usize) -> Vec<Visit> {
    (0..n)
        .map(|i| Visit {
            variant: variant.to_string(),
            holdout,
            converted: i < converted,
        })
        .collect()
}

#[test]
fn a_holdout_share_that_falls_from_half_to_a_tenth_does_not_bias_the_stratified_lift() {
    let baseline = r#"{"headline":"A","cta":"X"}"#;
    let other = r#"{"headline":"B","cta":"X"}"#;
    let yaml = |share: f64| {
        definitions(&format!("burn_in: 1000h, holdout: {{share: {share}}}"), "")
            .replace("burn_in: 0h, ", "")
            .replace(
                "      headline: [A, B, C, D]\n      cta: [X, Y]",
                "      headline: [A, B]\n      cta: [X]",
            )
    };
    let mut sim = Loop::new(&yaml(0.5));
    let start: DateTime<Utc> = "2026-03-01T00:00:00Z".parse().unwrap();
    sim.train(start);
    // Period 1 (holdout 50%): base rate .10 for the holdout, .12 for the bandit (lift +.02).
    for hour in 0..5 {
        let mut batch = visits(baseline, true, 500, 50);
        batch.extend(visits(baseline, false, 250, 30));
        batch.extend(visits(other, false, 250, 30));
        sim.write(start + TimeDelta::hours(hour), &batch);
    }
    sim.project.write("levered.yaml", &yaml(0.1));
    let middle = start + TimeDelta::hours(5);
    let report = sim.train(middle);
    assert_eq!(report.diagnostics.holdout_share, Some(0.1));
    // Period 2 (holdout 10%): rates double for everyone (.20 vs .22): the lift is still +.02.
    for hour in 5..10 {
        let mut batch = visits(baseline, true, 100, 20);
        batch.extend(visits(baseline, false, 450, 99));
        batch.extend(visits(other, false, 450, 99));
        sim.write(start + TimeDelta::hours(hour), &batch);
    }
    let report = sim.train(start + TimeDelta::hours(12));
    let lift = report
        .diagnostics
        .lift
        .expect("a lift with 3000 holdout units");
    assert_eq!(lift.strata, 2);
    assert!((lift.difference - 0.02).abs() < 1e-12, "{lift:?}");
    // Pooling the periods compares 1,290/7,000 with 350/3,000: a difference of .068, visibly biased.
    let holdout = report
        .arms
        .iter()
        .find(|a| a.role == Role::Holdout)
        .unwrap();
    let treated: Vec<_> = report
        .arms
        .iter()
        .filter(|a| a.role == Role::Bandit)
        .collect();
    let pooled = treated.iter().map(|a| a.conversions).sum::<i64>() as f64
        / treated.iter().map(|a| a.units).sum::<i64>() as f64
        - holdout.conversions as f64 / holdout.units as f64;
    assert!(
        (pooled - (1290.0 / 7000.0 - 350.0 / 3000.0)).abs() < 1e-12 && pooled > 0.06,
        "pooled {pooled}"
    );
    // Equal weights of the two periods: A = .17, B = .15, relative lift .17/.15 − 1.
    assert!((lift.relative.unwrap() - (0.17 / 0.15 - 1.0)).abs() < 1e-12);
    assert!(lift.difference_low < 0.02 && 0.02 < lift.difference_high);
    let table = sim.project.levered(&[
        "report",
        "--optimization",
        "hero",
        "--config",
        "levered.yaml",
    ]);
    assert!(
        table.stdout.contains("lift vs holdout: +0.020000"),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.contains("holdout share: 0.1000"),
        "{}",
        table.stdout
    );
}

#[test]
fn sample_ratio_mismatch_is_flagged_on_a_skewed_split_and_not_on_a_fair_one() {
    // Hours of traffic after the first run, and the batches the test then covers: 6 hours trained
    // 2 hours later, and 80 hours trained once at the end (a cron outage), when the weights in force
    // were published long before the tested batches.
    for (hours, batches) in [(6, 6), (80, 24)] {
        for (share_a, flagged) in [(0.5, false), (0.6, true)] {
            let report = srm_after(hours, share_a);
            let srm = report.diagnostics.srm.expect("an SRM test");
            let note = &report.diagnostics.srm_note;
            assert_eq!(srm.flagged, flagged, "{hours}h {share_a}: {srm:?} {note}");
            assert_eq!(srm.degrees_of_freedom, 1);
            assert_eq!(srm.unexpected_units, 0.0);
            // 500 visitors an hour split 60/40: (50·√batches)²/250 ·2 per batch, never f64::MAX.
            assert!(srm.statistic.is_finite() && srm.statistic < 1e4, "{srm:?}");
            assert!(note.contains(&format!("{batches} batches")), "{note}");
            assert_eq!(
                report
                    .warnings
                    .iter()
                    .any(|w| w.contains("sample-ratio mismatch")),
                flagged
            );
        }
    }
}

/// Trains an A/B optimization at the start (equal split), serves it `hours` of 500 visitors with
/// `share_a` of them on A, and trains again two hours after the traffic ends.
fn srm_after(hours: i64, share_a: f64) -> RunReport {
    let a = r#"{"headline":"A","cta":"X"}"#;
    let b = r#"{"headline":"B","cta":"X"}"#;
    let yaml = definitions("burn_in: 1000h", "")
        .replace("burn_in: 0h, ", "")
        .replace(
            "      headline: [A, B, C, D]\n      cta: [X, Y]",
            "      headline: [A, B]\n      cta: [X]",
        );
    let start: DateTime<Utc> = "2026-03-01T00:00:00Z".parse().unwrap();
    let mut sim = Loop::new(&yaml);
    sim.train(start);
    for hour in 0..hours {
        let batch: Vec<Visit> = (0..500)
            .map(|_| {
                let to_a = sim.rng.random::<f64>() < share_a;
                Visit {
                    variant: if to_a { a } else { b }.to_string(),
                    holdout: false,
                    converted: false,
                }
            })
            .collect();
        sim.write(start + TimeDelta::hours(hour), &batch);
    }
    sim.train(start + TimeDelta::hours(hours + 2))
}

#[test]
fn units_on_an_arm_served_at_weight_zero_are_a_finite_flagged_mismatch() {
    let srm = levered::model::srm(&[500.0, 480.0, 20.0], &[500.0, 500.0, 0.0]).unwrap();
    assert!(srm.flagged && srm.p_value == 0.0, "{srm:?}");
    assert_eq!(srm.unexpected_units, 20.0);
    // Pearson's statistic over the served arms: 0 + 20²/500.
    assert_eq!(srm.statistic, 0.8);
    assert_eq!(srm.degrees_of_freedom, 1);
    let text = levered::report::srm_text(&srm);
    assert_eq!(
        text,
        "chi-square 0.8, df 1, p = 0, 20 units on arms served at weight 0"
    );
    // However few units the served arms expect, units at weight 0 are flagged, not untestable.
    let few = levered::model::srm(&[2.0, 1.0, 7.0], &[2.0, 1.0, 0.0]).unwrap();
    assert!(few.flagged && few.unexpected_units == 7.0, "{few:?}");
}

/// Three arms where C (arm 3) is far behind: the first run drops it and asks the generation command
/// for one variant. Returns the project and the CLI run's output.
fn drop_one_and_generate(command: &str) -> (Loop, crate::support::Output) {
    let yaml = definitions(
        "drop: {below: 0.05, incubation: 0h}",
        &format!("    generation: {{strategy: command, command: {command}, timeout: 2s}}"),
    )
    .replace(
        "      headline: [A, B, C, D]\n      cta: [X, Y]",
        "      headline: [A, B, C]\n      cta: [X]",
    );
    let mut sim = Loop::new(&yaml);
    let start: DateTime<Utc> = "2026-03-01T00:00:00Z".parse().unwrap();
    for hour in 0..3 {
        let mut batch = visits(r#"{"headline":"A","cta":"X"}"#, false, 400, 80);
        batch.extend(visits(r#"{"headline":"B","cta":"X"}"#, false, 400, 100));
        batch.extend(visits(r#"{"headline":"C","cta":"X"}"#, false, 400, 4));
        sim.write(start + TimeDelta::hours(hour), &batch);
    }
    let out = sim.train_cli("2026-03-01T05:00:00Z");
    (sim, out)
}

#[test]
fn a_failing_hanging_or_garbled_generator_is_a_warning_and_the_run_completes() {
    for (command, message) in [
        (
            r#"[sh, -c, "echo broken >&2; exit 3"]"#,
            "failed (exit status: 3): broken",
        ),
        (
            r#"[sh, -c, "sleep 30"]"#,
            "did not finish within 2 s and was stopped",
        ),
        (
            r#"[sh, -c, "echo '<html>oops</html>'"]"#,
            "its output is not JSON",
        ),
        (
            r#"[sh, -c, "echo '{\"variants\": [{\"headline\": \"A\", \"cta\": \"X\"}, {\"title\": \"x\"}]}'"]"#,
            "already an arm",
        ),
        (
            "[./no-such-generator]",
            "cannot start `./no-such-generator`",
        ),
    ] {
        let started = std::time::Instant::now();
        let (sim, out) = drop_one_and_generate(command);
        assert_eq!(out.code, 0, "{command}: {out:?}");
        assert!(
            out.stderr.contains("generation command: ") && out.stderr.contains(message),
            "{command}: {}",
            out.stderr
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the timeout holds"
        );
        let allocation = read_csv(&sim.project.path("out/hero/allocation.csv"));
        let status: Vec<(&str, &str)> = allocation
            .iter()
            .map(|r| (r["arm_id"].as_str(), r["status"].as_str()))
            .collect();
        assert_eq!(
            status,
            [("1", "active"), ("2", "active"), ("3", "dropped")],
            "{command}"
        );
        let total: f64 = allocation
            .iter()
            .map(|r| r["weight"].parse::<f64>().unwrap())
            .sum();
        assert!((total - 1.0).abs() < 1e-12);
    }
}

#[test]
fn the_example_generator_adds_an_incubating_arm_with_a_new_level() {
    let script = crate::support::repo().join("examples/generators/propose_headlines.py");
    let (sim, out) = drop_one_and_generate(&format!("[python3, {}]", script.display()));
    assert_eq!(out.code, 0, "{out:?}");
    let allocation = read_csv(&sim.project.path("out/hero/allocation.csv"));
    let new = allocation
        .iter()
        .find(|r| r["arm_id"] == "4")
        .expect("arm 4 was generated");
    assert_eq!(new["status"], "incubating");
    assert_eq!(
        levels(&new["variant"]),
        ("Ship in half the time".to_string(), "X".to_string())
    );
    // A new arm without units gets max(floor, 1/n) of the traffic.
    let weight: f64 = new["weight"].parse().unwrap();
    assert!((weight - 1.0 / 3.0).abs() < 1e-15, "{weight}");
    let history = sim.project.levered(&[
        "history",
        "--optimization",
        "hero",
        "--config",
        "levered.yaml",
    ]);
    assert!(
        history
            .stdout
            .contains("proposed by the generation command"),
        "{}",
        history.stdout
    );
}

#[test]
fn a_holdout_without_a_holdout_column_is_an_invalid_definition() {
    let yaml = definitions("holdout: {share: 0.1}", "");
    let sim = Loop::new(&yaml);
    let connection = duckdb::Connection::open(sim.project.path("warehouse.duckdb")).unwrap();
    connection
        .execute_batch("ALTER TABLE exposures DROP COLUMN holdout")
        .unwrap();
    drop(connection);
    let out = sim.train_cli("2026-03-01T05:00:00Z");
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr
            .contains("has a holdout, but its exposures have no `holdout` column"),
        "{}",
        out.stderr
    );
}

#[test]
fn the_lift_interval_matches_a_hand_computation() {
    use levered::model::{lift, Stratum, Sums};
    let side = |units: f64, conversions: f64| Sums {
        units,
        conversions,
        value_sum: conversions,
        value_sq_sum: conversions,
    };
    // Two strata weighted by their units (300 and 350 of 650); within a stratum the variance of a
    // rate is p(1 − p)/(n − 1). Values computed apart from levered, in plain Python:
    //   A = Σ w p_t, B = Σ w p_h, Var = Σ w² p(1−p)/(n−1), 95% = ± 1.959963984540054 · se,
    //   relative: Var(A/B) = Var A / B² + A² Var B / B⁴.
    let strata = [
        Stratum {
            treated: side(200.0, 50.0),
            holdout: side(100.0, 20.0),
        },
        Stratum {
            treated: side(300.0, 90.0),
            holdout: side(50.0, 12.0),
        },
    ];
    let l = lift(&strata, true).expect("150 holdout units");
    let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
    assert!(close(l.difference, 0.05538461538461539), "{l:?}");
    assert!(close(l.difference_low, -0.02841172125230279), "{l:?}");
    assert!(close(l.difference_high, 0.13918095202153358), "{l:?}");
    assert!(close(l.relative.unwrap(), 0.25), "{l:?}");
    assert!(close(l.relative_low.unwrap(), -0.2035927429926942), "{l:?}");
    assert!(close(l.relative_high.unwrap(), 0.7035927429926943), "{l:?}");
    // Fewer than 100 units on a side: no estimate, and the reason says so.
    let small = [Stratum {
        treated: side(200.0, 50.0),
        holdout: side(99.0, 20.0),
    }];
    assert!(lift(&small, true)
        .unwrap_err()
        .to_string()
        .contains("at least 100"));
}

#[test]
fn the_srm_p_value_matches_scipy() {
    // scipy.stats.chisquare([1800, 1200], [1500, 1500]) → statistic 120, p 6.326068263677272e-28;
    // chisquare([510, 490, 1000], [500, 500, 1000]) → statistic 0.4, p 0.8187307530779818.
    let skewed = levered::model::srm(&[1800.0, 1200.0], &[1500.0, 1500.0]).unwrap();
    assert!((skewed.statistic - 120.0).abs() < 1e-9);
    assert!(
        (skewed.p_value / 6.326068263677272e-28 - 1.0).abs() < 1e-9,
        "{skewed:?}"
    );
    assert!(skewed.flagged);
    let fair = levered::model::srm(&[510.0, 490.0, 1000.0], &[500.0, 500.0, 1000.0]).unwrap();
    assert!(
        (fair.p_value - 0.8187307530779818).abs() < 1e-12,
        "{fair:?}"
    );
    assert!(!fair.flagged);
    assert_eq!(
        levered::report::srm_text(&skewed),
        "chi-square 120.0, df 1, p = 6.33e-28"
    );
    assert_eq!(
        levered::report::srm_text(&fair),
        "chi-square 0.4, df 2, p = 0.819"
    );
    assert!(
        levered::model::srm(&[3.0, 1.0], &[2.0, 2.0]).is_err(),
        "expected counts under 5"
    );
}

#[test]
fn completed_locks_the_winner_with_its_evidence_and_archived_explains_why_nothing_ran() {
    let two = |status: &str| {
        definitions("holdout: {share: 0.2}", "")
            .replace(
                "      headline: [A, B, C, D]\n      cta: [X, Y]",
                "      headline: [A, B]\n      cta: [X]",
            )
            .replace("status: live", &format!("status: {status}"))
    };
    let mut sim = Loop::new(&two("live"));
    let start: DateTime<Utc> = "2026-03-01T00:00:00Z".parse().unwrap();
    let a = r#"{"headline":"A","cta":"X"}"#;
    let b = r#"{"headline":"B","cta":"X"}"#;
    let mut batch = visits(a, false, 400, 40);
    batch.extend(visits(b, false, 400, 80));
    batch.extend(visits(a, true, 200, 20));
    sim.write(start, &batch);
    sim.project.write("levered.yaml", &two("completed"));
    let done = sim.train(start + TimeDelta::hours(3));
    let winner = done
        .winner
        .clone()
        .expect("a completed run records its winner");
    assert_eq!(winner.arm_id, 2);
    assert!(winner.p_best > 0.99 && winner.units == 400, "{winner:?}");
    let weights: Vec<(String, f64)> = done
        .allocation
        .iter()
        .map(|r| (r.arm_id.to_string(), r.weight))
        .collect();
    assert_eq!(
        weights,
        [
            ("1".to_string(), 0.0),
            ("2".to_string(), 1.0),
            ("holdout".to_string(), 0.0)
        ]
    );
    // Later data favours arm 1; the locked winner and its evidence stay.
    let mut batch = visits(a, false, 4000, 2000);
    batch.extend(visits(b, false, 100, 10));
    sim.write(start + TimeDelta::hours(4), &batch);
    let later = sim.train(start + TimeDelta::hours(8));
    assert_eq!(later.winner, Some(winner));
    sim.project.write("levered.yaml", &two("archived"));
    let out = sim.project.levered(&[
        "train",
        "--optimization",
        "hero",
        "--config",
        "levered.yaml",
        "--as-of",
        "2026-03-01T09:00:00Z",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("hero: nothing ran: archived"),
        "{}",
        out.stderr
    );
    let report = sim.project.levered(&[
        "report",
        "--optimization",
        "hero",
        "--config",
        "levered.yaml",
        "--format",
        "csv",
    ]);
    assert_eq!(report.code, 0, "the data stays queryable: {report:?}");
}
