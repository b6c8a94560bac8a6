//! Stage 5 of a training run: the allocation of each context. The pooled `*` allocation from the
//! pooled posteriors, the winner a completed optimization serves, and for contextual models the
//! allocations of the most frequent context cells.

use std::collections::BTreeMap;

use crate::allocation::{self, Phase, Roster, Settings};
use crate::config::{MetricKind, Optimization, Status};
use crate::domain::ContextKey;
use crate::model;
use crate::report::Winner;
use crate::state::LastRun;
use crate::time::Instant;

use super::fit::{stream_seed, ArmComparison, Fitter};
use super::guard::Guarded;
use super::tally::{Cell, Tally};

/// What every context of one run shares.
pub(super) struct Frame<'a> {
    pub(super) optimization: &'a Optimization,
    pub(super) roster: &'a Roster,
    pub(super) fitter: Fitter<'a>,
    pub(super) baseline: Option<u32>,
    pub(super) seed: u64,
    /// The pooled guardrail estimates.
    pub(super) guarded: Guarded,
}

/// The id of the baseline arm (the definition's first variant), if it is on the roster.
pub(super) fn baseline(optimization: &Optimization, roster: &Roster) -> Option<u32> {
    let first = optimization.variants.first()?;
    roster
        .arms
        .iter()
        .find(|a| first.0 == a.levels)
        .map(|a| a.id)
}

/// Where the optimization stands before the allocation: the rule's settings, the holdout's share
/// (`None` without a holdout) and the winner an earlier run locked.
pub(super) struct Standing {
    pub(super) settings: Settings,
    pub(super) holdout_share: Option<f64>,
    pub(super) locked: Option<Winner>,
}

pub(super) fn standing(
    optimization: &Optimization,
    pooled: &Cell,
    first_exposure: Option<Instant>,
    last: Option<&LastRun>,
    as_of: Instant,
) -> Standing {
    let model_settings = &optimization.model;
    let live = optimization.status == Status::Live;
    let holdout_units = pooled.holdout_raw.units as u64;
    let holdout_share = model_settings
        .holdout
        .map(|h| if live { h.share(holdout_units) } else { 0.0 });
    let burn_in_elapsed =
        first_exposure.is_some_and(|first| as_of >= first + model_settings.burn_in);
    let locked = last.and_then(|l| l.winner.clone());
    let settings = Settings {
        status: optimization.status,
        burn_in_elapsed,
        min_units_per_arm: model_settings.min_units_per_arm,
        floor: model_settings.floor.get(),
        locked_winner: locked
            .as_ref()
            .map(|w| w.arm_id)
            .or(last.and_then(|l| l.winner_arm_id)),
        holdout: holdout_share.unwrap_or(0.0),
    };
    Standing {
        settings,
        holdout_share,
        locked,
    }
}

/// One context's allocation: `*` (pooled) or a context cell.
pub(super) struct View<'a> {
    pub(super) context: ContextKey,
    pub(super) cell: &'a Cell,
    pub(super) fitted: BTreeMap<u32, model::Fitted>,
    pub(super) holdout_fit: model::Fitted,
    pub(super) comparison: ArmComparison,
    pub(super) decision: allocation::Decision,
    /// The context's guardrail estimates: its arms harmful there are held at the floor.
    pub(super) guarded: Guarded,
}

/// Every context's allocation, the pooled `*` first, and the winner.
pub(super) struct Decided<'a> {
    pub(super) views: Vec<View<'a>>,
    pub(super) winner: Option<Winner>,
    /// Why some contexts are served `*`, when they are.
    pub(super) context_note: Option<String>,
}

/// Decides the allocation of every context from the pooled posteriors `fitted` and their
/// `comparison`; a context compared by Monte Carlo adds a warning.
pub(super) fn decide<'a>(
    frame: &Frame<'_>,
    tally: &'a Tally,
    (fitted, comparison): (BTreeMap<u32, model::Fitted>, ArmComparison),
    standing: &Standing,
    as_of: Instant,
    warnings: &mut Vec<String>,
) -> Decided<'a> {
    let pooled = &tally.pooled;
    let harmful = frame.guarded.harmful();
    let states = comparison.states(frame.roster, pooled, frame.baseline, &harmful);
    let decision = allocation::decide(&states, &standing.settings);
    let mut views = vec![View {
        context: ContextKey::pooled(),
        cell: pooled,
        holdout_fit: frame.fitter.fit(&pooled.holdout_decayed),
        fitted,
        comparison,
        decision,
        guarded: frame.guarded.clone(),
    }];
    let winner = winner(frame, &views[0], standing.locked.clone(), as_of);
    // Contextual models: the most frequent cells get their own allocation, from posteriors shrunk
    // toward each arm's pooled posterior; every other visitor is served the pooled `*` rows.
    let cell_settings = Settings {
        locked_winner: views[0]
            .decision
            .phase
            .winner()
            .or(standing.settings.locked_winner),
        ..standing.settings
    };
    let mut context_note = None;
    let cells = context_views(frame, tally, &views[0], &cell_settings, &mut context_note);
    views.extend(cells);
    if let Some(context) = views.iter().skip(1).find(|v| {
        matches!(
            v.comparison.comparison.method,
            model::Method::MonteCarlo { .. }
        )
    }) {
        warnings.push(format!(
            "P(best) of context {} (and maybe others) by Monte Carlo: quadrature did not converge",
            context.context
        ));
    }
    Decided {
        views,
        winner,
        context_note,
    }
}

/// The winner of a completed optimization: the one an earlier run locked, else the arm the pooled
/// view completes on, with its evidence now (its run is filled in when the run is recorded).
fn winner(
    frame: &Frame<'_>,
    pooled: &View<'_>,
    locked: Option<Winner>,
    as_of: Instant,
) -> Option<Winner> {
    let Phase::Completed { winner } = pooled.decision.phase else {
        return None;
    };
    if let Some(locked) = locked.filter(|w| w.arm_id == winner) {
        return Some(locked);
    }
    let posterior = pooled.fitted[&winner].posterior;
    let interval = posterior.interval(0.95);
    Some(Winner {
        arm_id: winner,
        variant: frame
            .roster
            .arms
            .iter()
            .find(|a| a.id == winner)
            .map(|a| a.variant.clone())
            .unwrap_or_default(),
        p_best: pooled.comparison.p_best(winner).unwrap_or(0.0),
        mean: posterior.mean(),
        ci_low: interval.low,
        ci_high: interval.high,
        units: pooled.cell.raw(winner).units as i64,
        decided_run: String::new(),
        decided_as_of: as_of.rfc3339(),
    })
}

/// The allocations of the most frequent context cells (contextual models): posteriors shrunk toward
/// each arm's pooled posterior with the empirical-Bayes strength estimated across the cells.
fn context_views<'a>(
    frame: &Frame<'_>,
    tally: &'a Tally,
    pooled_view: &View<'_>,
    settings: &Settings,
    note: &mut Option<String>,
) -> Vec<View<'a>> {
    let mut views = Vec::new();
    let mut cells: Vec<(&ContextKey, &Cell)> = tally.cells.iter().collect();
    cells.sort_by(|a, b| {
        b.1.bandit_units()
            .total_cmp(&a.1.bandit_units())
            .then(a.0.cmp(b.0))
    });
    if cells.len() > frame.optimization.model.max_contexts {
        *note = Some(format!(
            "{} of {} contexts have their own allocation (model.max_contexts); the others are served `*`",
            frame.optimization.model.max_contexts,
            cells.len()
        ));
    }
    let strength = model::prior_strength(
        &frame
            .roster
            .arms
            .iter()
            .map(|a| cells.iter().map(|(_, c)| c.evidence(a.id)).collect())
            .collect::<Vec<_>>(),
        frame.optimization.reward.kind == MetricKind::Bool,
    )
    .unwrap_or(f64::INFINITY);
    let all: Vec<&Cell> = cells.iter().map(|(_, c)| *c).collect();
    let strengths = Guarded::strengths(frame.optimization, frame.roster, &all);
    for (context, cell) in cells
        .into_iter()
        .take(frame.optimization.model.max_contexts)
    {
        let shrink = |pooled_fit: &model::Fitted, pooled: &model::Sums, sums: &model::Sums| {
            frame.fitter.fit_cell(strength, pooled_fit, pooled, sums)
        };
        let cell_fitted: BTreeMap<u32, model::Fitted> = pooled_view
            .fitted
            .iter()
            .map(|(id, f)| {
                (
                    *id,
                    shrink(f, &tally.pooled.evidence(*id), &cell.evidence(*id)),
                )
            })
            .collect();
        let comparison = ArmComparison::compare(
            frame.roster,
            &cell_fitted,
            stream_seed(
                frame.seed,
                &format!("{}|{context}", frame.optimization.name),
            ),
        );
        let guarded = frame.guarded.in_cell(
            frame.optimization,
            (context, cell),
            &strengths,
            (frame.baseline, frame.seed),
        );
        let decision = allocation::decide(
            &comparison.states(frame.roster, cell, frame.baseline, &guarded.harmful()),
            settings,
        );
        views.push(View {
            context: context.clone(),
            cell,
            holdout_fit: shrink(
                &pooled_view.holdout_fit,
                &tally.pooled.holdout_decayed,
                &cell.holdout_decayed,
            ),
            fitted: cell_fitted,
            comparison,
            decision,
            guarded,
        });
    }
    views
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::plan::tests::optimization;

    fn last_run(winner: Option<&Winner>) -> LastRun {
        LastRun {
            run_id: "20260101T000000Z-0001".into(),
            as_of: Instant::from_micros(0),
            sql_hash: String::new(),
            final_until: None,
            first_exposure: None,
            newest_exposure: None,
            winner_arm_id: winner.map(|w| w.arm_id),
            winner: winner.cloned(),
            unmatched: Default::default(),
        }
    }

    #[test]
    fn a_completed_optimization_keeps_the_winner_an_earlier_run_locked() {
        let locked = Winner {
            arm_id: 2,
            variant: r#"{"color":"blue"}"#.into(),
            p_best: 0.97,
            mean: 0.2,
            ci_low: 0.1,
            ci_high: 0.3,
            units: 500,
            decided_run: "20260101T000000Z-0001".into(),
            decided_as_of: "2026-01-01T00:00:00Z".into(),
        };
        let hour = Instant::from_micros(3_600_000_000);
        let done = optimization("visitor_batch", "completed");
        let kept = standing(
            &done,
            &Cell::default(),
            Some(Instant::from_micros(0)),
            Some(&last_run(Some(&locked))),
            hour,
        );
        assert_eq!(kept.locked.as_ref(), Some(&locked));
        assert_eq!(kept.settings.locked_winner, Some(2));
        assert!(kept.holdout_share.is_none(), "no holdout is configured");
        // burn_in defaults to a longer time than one hour after the first exposure.
        assert!(!kept.settings.burn_in_elapsed);
        let live = optimization("visitor_batch", "live");
        let fresh = standing(&live, &Cell::default(), None, None, hour);
        assert!(fresh.locked.is_none() && fresh.settings.locked_winner.is_none());
        assert!(!fresh.settings.burn_in_elapsed, "no exposure yet");
    }

    #[test]
    fn the_baseline_is_the_first_variant_of_the_definition() {
        let hero = optimization("visitor_batch", "live");
        let dir = tempfile::tempdir().unwrap();
        let store = crate::state::StateStore::open(&dir.path().join("state.duckdb")).unwrap();
        let roster = crate::train::plan::reconcile(&hero, &store, Instant::from_micros(0)).unwrap();
        let first = &hero.variants[0].0;
        let id = baseline(&hero, &roster).unwrap();
        assert_eq!(
            &roster.arms.iter().find(|a| a.id == id).unwrap().levels,
            first
        );
    }
}
