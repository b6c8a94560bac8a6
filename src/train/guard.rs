//! Stage 3b of a training run: guardrails (docs/design.md §3.21). Each arm's posterior on every
//! guardrail metric from its decay-weighted pooled sums, and its P(harm) against the baseline arm
//! (docs/statistics.md, "P(harm) on a guardrail"). An arm whose P(harm) on some guardrail is at
//! least that guardrail's confidence is harmful: the later stages hold it at the floor, drop it
//! once it has incubated, and never make it the winner.

use std::collections::{BTreeMap, BTreeSet};

use crate::allocation::Roster;
use crate::config::{MetricKind, Optimization};
use crate::model::{self, Sums, Tolerance};

use super::tally::Cell;

/// An arm's estimate on one guardrail.
#[derive(Debug, Clone, Copy)]
pub(super) struct Estimate {
    pub(super) posterior: model::Posterior,
    pub(super) conversions: f64,
    /// Against the baseline; `None` for the baseline itself (or without one on the roster).
    pub(super) p_harm: Option<f64>,
    pub(super) harmful: bool,
}

/// The guardrail estimates of every arm on the roster.
#[derive(Default)]
pub(super) struct Guarded {
    /// Per arm id, one estimate per guardrail in the definition's order.
    estimates: BTreeMap<u32, Vec<Estimate>>,
}

/// A bool guardrail's posterior starts from the uniform Beta(1, 1): `model.prior` is the
/// reward's.
const BOOL_PRIOR: (f64, f64) = (1.0, 1.0);

impl Guarded {
    /// Estimates every arm of `roster` on every guardrail from the pooled `cell`.
    pub(super) fn assess(
        optimization: &Optimization,
        roster: &Roster,
        cell: &Cell,
        baseline: Option<u32>,
        seed: u64,
    ) -> Guarded {
        let mut estimates: BTreeMap<u32, Vec<Estimate>> = BTreeMap::new();
        for (index, guardrail) in optimization.guardrails.iter().enumerate() {
            let sums: Vec<(u32, Sums, Sums)> = roster
                .arms
                .iter()
                .map(|a| {
                    let (raw, evidence) = cell.guardrail(a.id, index);
                    (a.id, raw, evidence)
                })
                .collect();
            let numeric_prior =
                model::NumericPrior::pooled(&sums.iter().map(|(_, _, e)| *e).collect::<Vec<_>>());
            let fit = |evidence: &Sums| match guardrail.metric.kind {
                MetricKind::Bool => model::fit_bool(BOOL_PRIOR.0, BOOL_PRIOR.1, evidence),
                MetricKind::Numeric => numeric_prior.fit(evidence),
            };
            let base = baseline.and_then(|b| sums.iter().find(|(id, ..)| *id == b));
            let base_posterior = base.map(|(_, _, evidence)| fit(evidence).posterior);
            for (id, raw, evidence) in &sums {
                let posterior = fit(evidence).posterior;
                let p_harm = base_posterior
                    .filter(|_| Some(*id) != baseline)
                    .map(|b| model::p_harm(&posterior, &b, &guardrail.harm, seed));
                estimates.entry(*id).or_default().push(Estimate {
                    posterior,
                    conversions: raw.conversions,
                    p_harm,
                    harmful: p_harm.is_some_and(|p| p >= guardrail.confidence.get()),
                });
            }
        }
        Guarded { estimates }
    }

    /// The arms harmful on some guardrail.
    pub(super) fn harmful(&self) -> BTreeSet<u32> {
        self.estimates
            .iter()
            .filter(|(_, e)| e.iter().any(|e| e.harmful))
            .map(|(id, _)| *id)
            .collect()
    }

    /// The estimates of arm `id`, one per guardrail (empty for an arm added by this run).
    pub(super) fn of(&self, id: u32) -> &[Estimate] {
        self.estimates.get(&id).map_or(&[], Vec::as_slice)
    }

    /// Why arm `id` is harmful: the first guardrail it harms, in words.
    pub(super) fn reason(&self, optimization: &Optimization, id: u32) -> Option<String> {
        let (guardrail, estimate) = optimization
            .guardrails
            .iter()
            .zip(self.of(id))
            .find(|(_, e)| e.harmful)?;
        let tolerance = match guardrail.harm.tolerance {
            Tolerance::Relative(share) => format!("{}%", share * 100.0),
            Tolerance::Absolute(difference) => format!("{difference}"),
        };
        Some(format!(
            "guardrail {}: P(harm) {:.4} ≥ {} (worse than the baseline by more than {tolerance})",
            guardrail.metric.name,
            estimate.p_harm.unwrap_or(0.0),
            guardrail.confidence.get()
        ))
    }
}
