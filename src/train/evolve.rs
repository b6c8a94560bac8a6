//! Stage 4 of a training run: the roster evolves. Waiting arms start, incubating arms mature, arms
//! harmful on a guardrail or under `drop.below` after incubation are dropped and generation fills
//! the freed places (live optimizations only); the arms that changed are compared again.

use std::collections::BTreeMap;

use crate::allocation::{self, Phase, Roster, Settings};
use crate::config::{Optimization, Status};
use crate::domain::ArmStatus;
use crate::model::{self, Sums};
use crate::time::{Instant, Span};

use super::fit::{ArmComparison, Fitter};
use super::generation::{propose_arms, Evidence};
use super::guard::Guarded;
use super::tally::Cell;

/// What the roster evolves from: the fitted posteriors (completed with the prior of every new arm)
/// and the pooled sums.
pub(super) struct Fitted<'a> {
    pub(super) fitter: &'a Fitter<'a>,
    pub(super) arms: &'a mut BTreeMap<u32, model::Fitted>,
    pub(super) pooled: &'a Cell,
    pub(super) baseline: Option<u32>,
    pub(super) guarded: &'a Guarded,
}

/// Evolves `roster` as of `as_of` and returns the comparison of the arms that serve now;
/// generation's problems are added to `warnings`.
pub(super) fn evolve(
    optimization: &Optimization,
    roster: &mut Roster,
    fitted: Fitted<'_>,
    settings: &Settings,
    (stream, as_of): (u64, Instant),
    warnings: &mut Vec<String>,
) -> ArmComparison {
    let model_settings = &optimization.model;
    if optimization.generation.is_none() {
        // Without generation there is no cap: arms that waited under an earlier one start.
        let waiting: Vec<u32> = roster
            .arms
            .iter()
            .filter(|a| a.status == ArmStatus::Proposed)
            .map(|a| a.id)
            .collect();
        roster.start_proposed(
            &waiting,
            usize::MAX,
            "generation.max_active_arms removed",
            as_of,
        );
    }
    let incubation = model_settings.drop.map_or(Span::ZERO, |d| d.incubation);
    roster.mature(incubation, as_of);
    let comparison = ArmComparison::compare(roster, fitted.arms, stream);
    if optimization.status != Status::Live {
        return comparison;
    }
    let harmful = fitted.guarded.harmful();
    let states = comparison.states(roster, fitted.pooled, fitted.baseline, &harmful);
    // In the bandit phase, like the drop rule: an arm past incubation that harms a guardrail.
    let harmed: Vec<(u32, String)> = if allocation::phase(&states, settings) == Phase::Bandit {
        states
            .iter()
            .filter(|s| s.droppable && s.harmful)
            .filter_map(|s| {
                let reason = fitted.guarded.reason(optimization, s.id)?;
                Some((s.id, reason))
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut changed = !harmed.is_empty();
    roster.drop_arms(&harmed, as_of);
    if let Some(rule) = model_settings.drop {
        let states = comparison.states(roster, fitted.pooled, fitted.baseline, &harmful);
        let below = rule.below.get();
        let dropped: Vec<(u32, String)> = allocation::drops(&states, settings, below)
            .into_iter()
            .map(|id| {
                let p = comparison.p_best(id).unwrap_or(0.0);
                (
                    id,
                    format!("P(best) {p:.4} under drop.below {below} after incubation"),
                )
            })
            .collect();
        changed |= !dropped.is_empty();
        roster.drop_arms(&dropped, as_of);
    }
    if let Some(generation) = &optimization.generation {
        let before = roster.serving_count();
        propose_arms(
            optimization,
            generation,
            roster,
            &Evidence {
                fitted: fitted.arms,
                tally: fitted.pooled,
                comparison: &comparison,
            },
            as_of,
            warnings,
        );
        changed |= roster.serving_count() != before;
    }
    if !changed {
        return comparison;
    }
    // Generated arms have no data yet: their posterior is the prior.
    for arm in &roster.arms {
        fitted
            .arms
            .entry(arm.id)
            .or_insert_with(|| fitted.fitter.fit(&Sums::default()));
    }
    ArmComparison::compare(roster, fitted.arms, stream)
}

#[cfg(test)]
mod tests {
    use crate::allocation::Settings;
    use crate::domain::ArmStatus;
    use crate::time::Instant;
    use crate::train::fit::Fitter;
    use crate::train::fixture::{Fixture, HOUR};
    use crate::train::plan::reconcile;
    use crate::train::tally::Tally;

    #[test]
    fn an_arm_that_waited_under_a_generation_cap_starts_once_generation_is_removed() {
        let world = Fixture::new("{kind: mab}", 10);
        let hero = &world.config.optimizations["hero"];
        let mut roster = reconcile(hero, &world.store, Instant::from_micros(0)).unwrap();
        roster.arms[1].status = ArmStatus::Proposed;
        let baseline = Some(roster.arms[0].id);
        let tally = Tally::collect(&[], &[], Instant::from_micros(0), hero);
        let fitter = Fitter::new(hero, &roster, &tally.pooled);
        let mut arms = fitter.fit_arms(&roster, &tally.pooled);
        let settings = Settings {
            status: hero.status,
            burn_in_elapsed: false,
            min_units_per_arm: 0,
            floor: 0.0,
            locked_winner: None,
            holdout: 0.0,
        };
        let mut warnings = Vec::new();
        let before = roster.events.len();
        let serving = super::evolve(
            hero,
            &mut roster,
            super::Fitted {
                fitter: &fitter,
                arms: &mut arms,
                pooled: &tally.pooled,
                baseline,
                guarded: &Default::default(),
            },
            &settings,
            (7, Instant::from_micros(0) + HOUR * 5),
            &mut warnings,
        );
        let started = &roster.arms[1];
        // It starts incubating, and without a drop rule incubation takes no time.
        assert_eq!(started.status, ArmStatus::Active);
        assert_eq!(started.started, Some(Instant::from_micros(0) + HOUR * 5));
        let changes: Vec<(ArmStatus, &str)> = roster.events[before..]
            .iter()
            .filter(|e| e.arm_id == started.id)
            .map(|e| (e.status, e.reason.as_str()))
            .collect();
        assert_eq!(
            changes,
            [
                (ArmStatus::Incubating, "generation.max_active_arms removed"),
                (ArmStatus::Active, "incubation passed")
            ]
        );
        assert!(
            serving.index(started.id).is_some(),
            "the started arm is compared"
        );
        assert!(warnings.is_empty(), "{warnings:?}");
    }
}
