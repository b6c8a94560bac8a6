//! Stage 3 of a training run: posteriors. Each arm's posterior from its decay-weighted sums
//! (pooled, or a context cell's shrunk toward the pooled one), and P(best) with expected loss among
//! the serving arms.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use crate::allocation::{ArmState, Roster};
use crate::config::{MetricKind, Optimization};
use crate::domain::ArmStatus;
use crate::model::{self, Sums};

use super::tally::Cell;

/// Fits posteriors of one optimization's reward.
pub(super) struct Fitter<'a> {
    optimization: &'a Optimization,
    /// The numeric reward's prior, from every arm's pooled sums.
    numeric_prior: model::NumericPrior,
}

impl<'a> Fitter<'a> {
    pub(super) fn new(optimization: &'a Optimization, roster: &Roster, pooled: &Cell) -> Self {
        let sums: Vec<Sums> = roster.arms.iter().map(|a| pooled.evidence(a.id)).collect();
        Fitter {
            optimization,
            numeric_prior: model::NumericPrior::pooled(&sums),
        }
    }

    /// The posterior of `sums` (the prior for an arm without data).
    pub(super) fn fit(&self, sums: &Sums) -> model::Fitted {
        let prior = &self.optimization.model.prior;
        match self.optimization.reward.kind {
            MetricKind::Bool => model::fit_bool(prior.alpha, prior.beta, sums),
            MetricKind::Numeric => self.numeric_prior.fit(sums),
        }
    }

    /// Every arm's pooled posterior.
    pub(super) fn fit_arms(&self, roster: &Roster, pooled: &Cell) -> BTreeMap<u32, model::Fitted> {
        roster
            .arms
            .iter()
            .map(|a| (a.id, self.fit(&pooled.evidence(a.id))))
            .collect()
    }

    /// A context cell's posterior of `sums`, shrunk with `strength` toward the pooled posterior
    /// `pooled_fit` of the pooled sums `pooled`.
    pub(super) fn fit_cell(
        &self,
        strength: f64,
        pooled_fit: &model::Fitted,
        pooled: &Sums,
        sums: &Sums,
    ) -> model::Fitted {
        match self.optimization.reward.kind {
            MetricKind::Bool => model::fit_bool_cell(pooled_fit, strength, sums),
            MetricKind::Numeric => {
                model::fit_numeric_cell(&self.numeric_prior, pooled, strength, sums)
            }
        }
    }
}

/// P(best) and expected loss among the serving arms.
pub(super) struct ArmComparison {
    ids: Vec<u32>,
    pub(super) comparison: model::Comparison,
}

impl ArmComparison {
    pub(super) fn compare(
        roster: &Roster,
        fitted: &BTreeMap<u32, model::Fitted>,
        seed: u64,
    ) -> ArmComparison {
        let ids: Vec<u32> = roster.serving().map(|a| a.id).collect();
        let posteriors: Vec<model::Posterior> = ids.iter().map(|id| fitted[id].posterior).collect();
        ArmComparison {
            comparison: model::compare(&posteriors, seed),
            ids,
        }
    }

    pub(super) fn index(&self, id: u32) -> Option<usize> {
        self.ids.iter().position(|i| *i == id)
    }

    pub(super) fn p_best(&self, id: u32) -> Option<f64> {
        self.index(id).map(|i| self.comparison.p_best[i])
    }

    /// What the allocation rule knows about each serving arm; `harmful` are the arms harmful on
    /// a guardrail.
    pub(super) fn states(
        &self,
        roster: &Roster,
        cell: &Cell,
        baseline: Option<u32>,
        harmful: &BTreeSet<u32>,
    ) -> Vec<ArmState> {
        roster
            .serving()
            .map(|arm| ArmState {
                id: arm.id,
                units: cell.raw(arm.id).units as u64,
                p_best: self.p_best(arm.id).unwrap_or(0.0),
                initial: arm.initial,
                droppable: arm.status == ArmStatus::Active && Some(arm.id) != baseline,
                harmful: harmful.contains(&arm.id),
            })
            .collect()
    }
}

/// The seed of one optimization's random stream, derived from the run seed and its name.
pub(super) fn stream_seed(seed: u64, optimization: &str) -> u64 {
    let digest = Sha256::digest(format!("{seed}:{optimization}").as_bytes());
    u64::from_be_bytes(
        digest[..8]
            .try_into()
            .expect("a SHA-256 digest has 32 bytes"),
    )
}

#[cfg(test)]
mod tests {
    use crate::train::fixture::Fixture;
    use crate::train::tally::Tally;

    #[test]
    fn each_arm_is_fitted_from_its_decayed_sums_and_the_comparison_covers_the_serving_arms() {
        let mut world = Fixture::new("{kind: mab, prior: {alpha: 1, beta: 1}}", 10);
        let (fitted, comparison) = world.staged(|job, planned, evidence, _| {
            let tally = Tally::collect(
                &evidence.batches,
                &evidence.served,
                planned.scan.as_of,
                job.optimization,
            );
            let fitter = super::Fitter::new(job.optimization, &planned.roster, &tally.pooled);
            let fitted = fitter.fit_arms(&planned.roster, &tally.pooled);
            let comparison = super::ArmComparison::compare(&planned.roster, &fitted, 7);
            (fitted, comparison)
        });
        // 221 mature visitors (see the evidence test): red 111 with 12 conversions, blue 110 with
        // 33; Beta(1 + conversions, 1 + units · f - conversions), where f is the arm's mix factor
        // over the hourly periods (docs/statistics.md, "Period effects"): the values below are from
        // an independent fit of the same table (scripts/period_oracles.py, `fixture`).
        let (red, blue) = (&fitted[&1], &fitted[&2]);
        assert_eq!((red.alpha, blue.alpha), (13.0, 34.0));
        assert!((red.beta - 104.30434782608695).abs() < 1e-9, "{}", red.beta);
        assert!(
            (blue.beta - 73.69565217391303).abs() < 1e-9,
            "{}",
            blue.beta
        );
        let p_red = comparison.p_best(1).unwrap();
        let p_blue = comparison.p_best(2).unwrap();
        assert!((p_red + p_blue - 1.0).abs() < 1e-9, "{p_red} + {p_blue}");
        assert!(
            p_blue > 0.999,
            "blue converts three times as often: {p_blue}"
        );
    }
}
