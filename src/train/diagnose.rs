//! Stage 6 of a training run: diagnostics. The rows the scan could not count, stale data, an
//! unconfigured holdout, Monte Carlo comparisons, arms the definition changed, the sample-ratio test
//! and the lift over the holdout; each problem is also a warning.

use crate::allocation::Roster;
use crate::config::{Config, MetricKind, Optimization};
use crate::model;
use crate::report::{self, Diagnostics};
use crate::state::LastRun;
use crate::time::Instant;
use crate::warehouse::Unmatched;

use super::decide::Decided;
use super::evidence::Evidence;
use super::tally::{sample_ratio, Tally};

/// The diagnostics of one run; its warnings are added to `warnings`.
pub(super) fn diagnose(
    config: &Config,
    optimization: &Optimization,
    (evidence, tally): (&Evidence, &Tally),
    (roster, decided): (&Roster, &Decided<'_>),
    (clock, holdout_share): (Clock, Option<f64>),
    last: Option<&LastRun>,
    warnings: &mut Vec<String>,
) -> Diagnostics {
    let as_of = clock.as_of;
    let repeated_warnings = unmatched_rows(optimization, evidence, clock, last, warnings);
    match evidence.newest_exposure {
        None => warnings.push(format!(
            "no valid exposure found for this optimization{}",
            evidence.scan.samples.elsewhere(optimization)
        )),
        Some(_) => warnings.extend(stale(config, evidence, as_of)),
    }
    let model_settings = &optimization.model;
    let pooled = &tally.pooled;
    let holdout_units = pooled.holdout_raw.units as u64;
    if model_settings.holdout.is_none() && holdout_units > 0 {
        warnings.push(format!(
            "{holdout_units} mature units are flagged holdout in the exposures, but no holdout is configured; they are left out of every arm's posterior"
        ));
    }
    if let model::Method::MonteCarlo { draws, seed } = decided.views[0].comparison.comparison.method
    {
        warnings.push(format!(
            "P(best) by Monte Carlo ({draws} draws, seed {seed}): quadrature did not converge"
        ));
    }
    for event in &roster.events {
        if event.definition_changed {
            warnings.push(format!(
                "arm {} is now {}: {} (the definition changed)",
                event.arm_id, event.status, event.reason
            ));
        }
    }
    let (srm, srm_note) = sample_ratio(
        &evidence.batches,
        &evidence.served,
        as_of,
        model_settings.batch,
        optimization.attribution.window,
    );
    if let Some(test) = srm.filter(|t| t.flagged) {
        warnings.push(format!(
            "sample-ratio mismatch: the units per arm do not follow the served weights ({}, {srm_note}): check that the serving side reads allocation.csv and logs every exposure",
            report::srm_text(&test)
        ));
    }
    let bool_reward = optimization.reward.kind == MetricKind::Bool;
    let (lift, lift_note) = match model_settings.holdout {
        None => (None, Some("no holdout is configured".to_string())),
        Some(_) => match model::lift(&pooled.strata(None), bool_reward) {
            Ok(lift) => (Some(lift), None),
            Err(why) => (None, Some(why.to_string())),
        },
    };
    Diagnostics {
        holdout_share,
        lift,
        lift_note,
        srm,
        srm_note,
        arm_changes: roster.events.clone(),
        context_note: decided.context_note.clone(),
        repeated_warnings,
    }
}

/// The problem of exposures older than `warehouse.stale_after` at `as_of`, if they are.
pub(super) fn stale(config: &Config, evidence: &Evidence, as_of: Instant) -> Option<String> {
    let newest = evidence.newest_exposure?;
    (newest + config.warehouse.stale_after < as_of).then(|| {
        format!(
            "the newest exposure ({}) is older than warehouse.stale_after ({}): is the pipeline still writing?",
            newest.rfc3339(),
            config.warehouse.stale_after
        )
    })
}

/// When a run is: its `as_of`, and the wall-clock time it ran at.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    pub as_of: Instant,
    pub trained_at: Instant,
}

impl Clock {
    /// Whether the run trains as of a time more than a batch in the past (a backfill), when the
    /// exposures after `as_of` are expected, not a clock problem.
    fn backfill(&self, batch: crate::time::Span) -> bool {
        self.as_of + batch < self.trained_at
    }
}

/// Warns of the exposure rows and the metric rows the scan could not count, except the `future`
/// rows of a backfill; returns the warnings whose reasons the last run had too.
fn unmatched_rows(
    optimization: &Optimization,
    evidence: &Evidence,
    clock: Clock,
    last: Option<&LastRun>,
    warnings: &mut Vec<String>,
) -> Vec<String> {
    let backfill = clock.backfill(optimization.model.batch);
    let warned = evidence
        .scan
        .unmatched
        .iter()
        .filter(|(reason, _)| !(backfill && **reason == Unmatched::Future));
    let seen_before = |reasons: &[&Unmatched]| {
        last.is_some_and(|l| reasons.iter().all(|r| l.unmatched.contains(r.label())))
    };
    let (metric_rows, exposure_rows): (Vec<_>, Vec<_>) =
        warned.partition(|(reason, _)| reason.is_metric_row());
    let mut repeated = Vec::new();
    if !exposure_rows.is_empty() {
        let parts: Vec<String> = exposure_rows
            .iter()
            .map(|(r, c)| format!("{}: {c}", r.label()))
            .collect();
        warnings.push(format!(
            "{} exposure rows in the scanned range were not counted ({}){}",
            exposure_rows.iter().map(|(_, c)| **c).sum::<i64>(),
            parts.join(", "),
            evidence.scan.samples.unknown_variants(optimization)
        ));
        let reasons: Vec<&Unmatched> = exposure_rows.iter().map(|(r, _)| *r).collect();
        if seen_before(&reasons) {
            repeated.extend(warnings.last().cloned());
        }
    }
    for (reason, count) in metric_rows {
        let metrics = if *reason == Unmatched::GuardrailNullValue {
            let names: Vec<String> = optimization
                .guardrails
                .iter()
                .map(|g| format!("`{}`", g.metric.name))
                .collect();
            format!("guardrail metrics {}", names.join(", "))
        } else {
            format!("metric `{}`", optimization.reward.name)
        };
        warnings.push(format!(
            "{count} rows of {metrics} in the scanned range were not counted as rewards ({}: column `value` is NULL)",
            reason.label()
        ));
        if seen_before(&[reason]) {
            repeated.extend(warnings.last().cloned());
        }
    }
    repeated
}

#[cfg(test)]
mod tests {
    use crate::train::fixture::Fixture;
    use crate::train::run::report_of;

    #[test]
    fn unmatched_rows_a_stale_pipeline_and_holdout_units_without_a_holdout_are_warned() {
        let mut world = Fixture::new("{kind: mab}", 10);
        // Every tenth visitor flagged holdout though the model has none; nothing in the last 8 h.
        for (i, unit) in world.memory.units.iter_mut().enumerate() {
            unit.holdout = i % 10 == 0;
        }
        let stale_from =
            crate::time::Instant::from_utc(world.options.as_of) - super::super::fixture::HOUR * 8;
        world.memory.units.retain(|u| u.exposure < stale_from);
        let odd = crate::simulate::memory::Unit {
            levels: vec!["green".into()],
            ..world.memory.units[0].clone()
        };
        world.memory.units.push(odd);
        world.config.warehouse.stale_after = crate::time::Span::parse("6h").unwrap();
        let report = world.staged(|job, planned, evidence, _| report_of(job, planned, evidence, 7));
        let warned = |text: &str| report.warnings.iter().any(|w| w.contains(text));
        assert!(
            warned("1 exposure rows in the scanned range were not counted (unknown_variant: 1)"),
            "{:?}",
            report.warnings
        );
        assert!(
            warned("is older than warehouse.stale_after (6h)"),
            "{:?}",
            report.warnings
        );
        assert!(
            warned("16 mature units are flagged holdout in the exposures, but no holdout is configured"),
            "{:?}",
            report.warnings
        );
        assert_eq!(
            report.diagnostics.lift_note.as_deref(),
            Some("no holdout is configured")
        );
        assert!(
            report.diagnostics.srm.is_none(),
            "no run served these batches"
        );
    }
}
