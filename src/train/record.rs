//! Stage 7 of a training run: the run record. The allocation rows and the report rows of every
//! context, and the run report that renderers and the state store take.

use std::collections::BTreeMap;

use crate::config::MetricKind;
use crate::domain::{ArmId, ArmStatus, ContextKey};
use crate::model::{self, Sums};
use crate::report::{
    self, AllocationRow, ArmReport, Diagnostics, GuardrailEstimate, RunReport, ScanSummary, Winner,
};
use crate::time::Instant;

use super::decide::{Decided, Frame, View};
use super::evidence::Evidence;
use super::plan::Planned;
use super::TrainOptions;

/// The report of the run planned as `planned`, decided as `decided`.
pub(super) fn record(
    frame: &Frame<'_>,
    (planned, evidence, decided): (&Planned<'_>, &Evidence, Decided<'_>),
    (diagnostics, warnings): (Diagnostics, Vec<String>),
    options: &TrainOptions,
) -> RunReport {
    let as_of = planned.scan.as_of;
    let from_batch = planned.scan.from_batch;
    let run_id = report::run_id(options.as_of, evidence.seq);
    let winner = decided.winner.map(|w| Winner {
        decided_run: if w.decided_run.is_empty() {
            run_id.clone()
        } else {
            w.decided_run
        },
        ..w
    });
    let trained_at = options.trained_at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let (allocation, arms) = rows(
        frame,
        &decided.views,
        diagnostics.holdout_share,
        &evidence.previous,
        (&run_id, &trained_at),
    );
    let pooled = &decided.views[0];
    RunReport {
        optimization: frame.optimization.name.clone(),
        run_id,
        metric: frame.optimization.reward.name.clone(),
        as_of: as_of.rfc3339(),
        trained_at,
        seed: frame.seed,
        phase: pooled.decision.phase.clone(),
        p_best_method: pooled.comparison.comparison.method,
        scan: ScanSummary {
            mode: if from_batch.is_some() {
                "incremental"
            } else {
                "full"
            }
            .into(),
            full_reason: planned.full_reason.clone(),
            from_batch: from_batch.map(Instant::rfc3339),
            batches_recomputed: evidence
                .scan
                .rows
                .iter()
                .map(|r| r.batch_start)
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            mature_units: evidence
                .batches
                .iter()
                .filter(|b| !b.holdout)
                .map(|b| b.units)
                .sum(),
            unmatched: evidence
                .scan
                .unmatched
                .iter()
                .map(|(reason, count)| (reason.label().to_string(), *count))
                .collect(),
            newest_exposure: evidence.newest_exposure.map(Instant::rfc3339),
            parts: evidence.scan.parts,
        },
        diagnostics,
        winner,
        warnings,
        allocation,
        arms,
    }
}

/// The allocation and report rows of every context: each arm (whatever its status) and the holdout.
fn rows(
    frame: &Frame<'_>,
    views: &[View<'_>],
    holdout_share: Option<f64>,
    previous: &BTreeMap<(ContextKey, ArmId), f64>,
    (run_id, trained_at): (&str, &str),
) -> (Vec<AllocationRow>, Vec<ArmReport>) {
    let mut allocation_rows = Vec::new();
    let mut arm_reports = Vec::new();
    let baseline_json = frame
        .optimization
        .variants
        .first()
        .map(|v| frame.optimization.variant_json(v))
        .unwrap_or_default();
    for view in views {
        let states = view.comparison.states(
            frame.roster,
            view.cell,
            frame.baseline,
            &view.guarded.harmful(),
        );
        let weight_of: BTreeMap<u32, f64> = states
            .iter()
            .zip(&view.decision.weights)
            .map(|(s, w)| (s.id, *w))
            .collect();
        let mut rows: Vec<Row> = frame
            .roster
            .arms
            .iter()
            .map(|arm| Row {
                arm_id: ArmId::Arm(arm.id),
                variant: arm.variant.clone(),
                status: arm.status,
                counts: view.cell.raw(arm.id),
                fitted: view.fitted[&arm.id],
                weight: weight_of.get(&arm.id).copied().unwrap_or(0.0),
            })
            .collect();
        if holdout_share.is_some() {
            rows.push(Row {
                arm_id: ArmId::Holdout,
                variant: baseline_json.clone(),
                status: ArmStatus::Active,
                counts: view.cell.holdout_raw,
                fitted: view.holdout_fit,
                weight: view.decision.holdout,
            });
        }
        for row in rows {
            let Row {
                arm_id,
                variant,
                status,
                counts,
                fitted,
                weight,
            } = row;
            let bandit_id = arm_id.arm();
            allocation_rows.push(AllocationRow {
                optimization: frame.optimization.name.clone(),
                run_id: run_id.to_string(),
                trained_at: trained_at.to_string(),
                context: view.context.clone(),
                arm_id,
                role: arm_id.role(),
                variant: variant.clone(),
                weight,
                status,
            });
            let rate = (counts.units > 0.0).then(|| match frame.optimization.reward.kind {
                MetricKind::Bool => counts.conversions / counts.units,
                MetricKind::Numeric => counts.value_sum / counts.units,
            });
            let arm_lift = match (bandit_id, frame.optimization.model.holdout) {
                (Some(id), Some(_)) => model::lift(
                    &view.cell.strata(Some(id)),
                    frame.optimization.reward.kind == MetricKind::Bool,
                )
                .ok(),
                _ => None,
            };
            let interval = fitted.posterior.interval(0.95);
            let in_bandit = bandit_id.and_then(|id| view.comparison.index(id));
            arm_reports.push(ArmReport {
                context: view.context.clone(),
                arm_id,
                role: arm_id.role(),
                variant,
                status,
                units: counts.units as i64,
                conversions: counts.conversions as i64,
                rate,
                alpha: fitted.alpha,
                beta: fitted.beta,
                mean: fitted.posterior.mean(),
                ci_low: interval.low,
                ci_high: interval.high,
                p_best: in_bandit.map(|i| view.comparison.comparison.p_best[i]),
                expected_loss: in_bandit.map(|i| view.comparison.comparison.expected_loss[i]),
                weight_prev: bandit_id.and(previous.get(&(view.context.clone(), arm_id)).copied()),
                weight_new: bandit_id.map(|_| weight),
                lift_vs_holdout: arm_lift.and_then(|l| l.relative),
                lift_ci_low: arm_lift.and_then(|l| l.relative_low),
                lift_ci_high: arm_lift.and_then(|l| l.relative_high),
                guardrails: bandit_id
                    .map_or_else(Vec::new, |id| guardrail_estimates(frame, view, id)),
            });
        }
    }
    (allocation_rows, arm_reports)
}

/// Arm `id`'s estimates on the guardrails in `view`'s context, as the report shows them.
fn guardrail_estimates(frame: &Frame<'_>, view: &View<'_>, id: u32) -> Vec<GuardrailEstimate> {
    frame
        .optimization
        .guardrails
        .iter()
        .zip(view.guarded.of(id))
        .map(|(guardrail, estimate)| {
            let posterior = estimate.fitted.posterior;
            let interval = posterior.interval(0.95);
            GuardrailEstimate {
                metric: guardrail.metric.name.clone(),
                conversions: estimate.conversions as i64,
                mean: posterior.mean(),
                ci_low: interval.low,
                ci_high: interval.high,
                p_harm: estimate.p_harm,
                harmful: estimate.harmful,
            }
        })
        .collect()
}

/// One row of the allocation and the report, before rendering.
struct Row {
    arm_id: ArmId,
    variant: String,
    status: ArmStatus,
    counts: Sums,
    fitted: model::Fitted,
    weight: f64,
}

#[cfg(test)]
mod tests {
    use crate::domain::{ArmId, Role};
    use crate::train::fixture::Fixture;
    use crate::train::run::report_of;

    #[test]
    fn every_arm_and_the_holdout_get_one_row_and_the_weights_sum_to_one() {
        let mut world = Fixture::new("{kind: mab, burn_in: 0h, holdout: {share: 0.1}}", 20);
        let (report, counted) = world.staged(|job, planned, evidence, _| {
            let counted: i64 = evidence.batches.iter().map(|b| b.units).sum();
            (report_of(job, planned, evidence, 7), counted)
        });
        let ids: Vec<(ArmId, Role)> = report
            .allocation
            .iter()
            .map(|a| (a.arm_id, a.role))
            .collect();
        assert_eq!(
            ids,
            [
                (ArmId::Arm(1), Role::Bandit),
                (ArmId::Arm(2), Role::Bandit),
                (ArmId::Holdout, Role::Holdout)
            ]
        );
        let total: f64 = report.allocation.iter().map(|a| a.weight).sum();
        assert!((total - 1.0).abs() < 1e-12, "{total}");
        let holdout = &report.allocation[2];
        assert_eq!(holdout.weight, 0.1);
        assert_eq!(
            holdout.variant, r#"{"color":"red"}"#,
            "the holdout sees the baseline"
        );
        // The report rows carry the same arms, with the units the evidence counted.
        let units: i64 = report.arms.iter().map(|a| a.units).sum();
        assert_eq!(units, counted);
        assert_eq!(report.run_id, "20260102T000000Z-0001");
        assert_eq!(report.seed, 7);
    }
}
