//! Stage 4 of a training run: the roster evolves. Waiting arms start, incubating arms mature, arms
//! under `drop.below` after incubation are dropped and generation fills the freed places (live
//! optimizations only); the arms that changed are compared again.

use std::collections::BTreeMap;

use crate::allocation::{self, ArmStatus, Roster, Settings};
use crate::config::{Optimization, Status};
use crate::model::{self, Sums};

use super::fit::{Fitter, Serving};
use super::generation::{generate, Evidence};
use super::tally::Cell;

/// What the roster evolves from: the fitted posteriors (completed with the prior of every new arm)
/// and the pooled sums.
pub(super) struct Fitted<'a> {
    pub(super) fitter: &'a Fitter<'a>,
    pub(super) arms: &'a mut BTreeMap<u32, model::Fitted>,
    pub(super) pooled: &'a Cell,
    pub(super) baseline: Option<u32>,
}

/// Evolves `roster` as of `as_of_us` and returns the comparison of the arms that serve now;
/// generation's problems are added to `warnings`.
pub(super) fn evolve(
    optimization: &Optimization,
    roster: &mut Roster,
    fitted: Fitted<'_>,
    settings: &Settings,
    (stream, as_of_us): (u64, i64),
    warnings: &mut Vec<String>,
) -> Serving {
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
            as_of_us,
        );
    }
    let incubation_us = model_settings.drop.map_or(0, |d| d.incubation.micros());
    roster.mature(incubation_us, as_of_us);
    let comparison = Serving::compare(roster, fitted.arms, stream);
    if optimization.status != Status::Live {
        return comparison;
    }
    let mut changed = false;
    if let Some(rule) = model_settings.drop {
        let states = comparison.states(roster, fitted.pooled, fitted.baseline);
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
        roster.drop_arms(&dropped, as_of_us);
    }
    if let Some(generation) = &optimization.generation {
        let before = roster.serving_count();
        generate(
            optimization,
            generation,
            roster,
            &Evidence {
                fitted: fitted.arms,
                tally: fitted.pooled,
                comparison: &comparison,
            },
            as_of_us,
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
    Serving::compare(roster, fitted.arms, stream)
}
