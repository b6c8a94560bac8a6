//! Stage 6 of a training run: diagnostics. The rows the scan could not count, stale data, an
//! unconfigured holdout, Monte Carlo comparisons, arms the definition changed, the sample-ratio test
//! and the lift over the holdout; each problem is also a warning.

use crate::allocation::Roster;
use crate::config::{Config, MetricKind, Optimization};
use crate::model;
use crate::report::{self, Diagnostics};
use crate::time::Instant;

use super::decide::Decided;
use super::evidence::Evidence;
use super::tally::{sample_ratio, Tally};

/// The diagnostics of one run; its warnings are added to `warnings`.
pub(super) fn diagnose(
    config: &Config,
    optimization: &Optimization,
    (evidence, tally): (&Evidence, &Tally),
    (roster, decided): (&Roster, &Decided<'_>),
    (as_of, holdout_share): (Instant, Option<f64>),
    warnings: &mut Vec<String>,
) -> Diagnostics {
    unmatched_rows(optimization, evidence, warnings);
    match evidence.newest_exposure {
        None => warnings.push(format!(
            "no valid exposure found for this optimization{}",
            evidence.scan.samples.elsewhere(optimization)
        )),
        Some(newest) if newest + config.warehouse.stale_after < as_of => warnings.push(format!(
            "the newest exposure ({}) is older than warehouse.stale_after ({}): is the pipeline still writing?",
            newest.rfc3339(),
            config.warehouse.stale_after
        )),
        Some(_) => {}
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
    }
}

/// Warns of the exposure rows and the metric rows the scan could not count.
fn unmatched_rows(optimization: &Optimization, evidence: &Evidence, warnings: &mut Vec<String>) {
    let (metric_rows, exposure_rows): (Vec<_>, Vec<_>) = evidence
        .scan
        .unmatched
        .iter()
        .partition(|(reason, _)| reason.is_metric_row());
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
    }
    for (reason, count) in metric_rows {
        warnings.push(format!(
            "{count} rows of metric `{}` in the scanned range were not counted as rewards ({}: column `value` is NULL)",
            optimization.reward.name,
            reason.label()
        ));
    }
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
