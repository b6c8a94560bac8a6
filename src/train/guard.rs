//! Stage 3b of a training run: guardrails (docs/design.md §3.21). Each arm's posterior on every
//! guardrail metric from its decay-weighted sums (pooled, or a context cell's shrunk toward the
//! pooled one as the reward's are), and its P(harm) against the baseline arm (docs/statistics.md,
//! "P(harm) on a guardrail"). An arm whose P(harm) on some guardrail is at least that guardrail's
//! confidence is harmful: the later stages hold it at the floor, drop it once it has incubated
//! (pooled), and never make it the winner.

use std::collections::{BTreeMap, BTreeSet};

use crate::allocation::Roster;
use crate::config::{Guardrail, MetricKind, Optimization};
use crate::domain::ContextKey;
use crate::model::{self, Sums, Tolerance};

use super::fit::stream_seed;
use super::tally::Cell;

/// An arm's estimate on one guardrail.
#[derive(Debug, Clone, Copy)]
pub(super) struct Estimate {
    pub(super) fitted: model::Fitted,
    /// The decay-weighted sums the posterior is fitted to.
    evidence: Sums,
    pub(super) conversions: f64,
    /// Against the baseline; `None` for the baseline itself (or without one on the roster).
    pub(super) p_harm: Option<f64>,
    pub(super) harmful: bool,
}

/// The guardrail estimates of every arm on the roster, in one context (or pooled).
#[derive(Debug, Clone, Default)]
pub(super) struct Guarded {
    /// Per arm id, one estimate per guardrail in the definition's order.
    estimates: BTreeMap<u32, Vec<Estimate>>,
    /// Per guardrail, the prior of a numeric metric, pooled from every arm's sums.
    priors: Vec<model::NumericPrior>,
}

/// The units of evidence a bool guardrail's prior is worth.
const BOOL_PRIOR_UNITS: f64 = 2.0;

/// A bool guardrail's prior (`model.prior` is the reward's): Beta(2p, 2(1 − p)) with p the pooled
/// rate of all arms (½ without units), each parameter at least 0.01. An arm without data then
/// sits near the other arms, not at ½: with a uniform prior a new arm would look harmful on a rare
/// event (refunds at 2%) before its first unit.
fn bool_prior(arms: &[Sums]) -> (f64, f64) {
    let (units, conversions) = arms
        .iter()
        .fold((0.0, 0.0), |(u, c), s| (u + s.units, c + s.conversions));
    let rate = if units > 0.0 {
        conversions / units
    } else {
        0.5
    };
    (
        (BOOL_PRIOR_UNITS * rate).max(0.01),
        (BOOL_PRIOR_UNITS * (1.0 - rate)).max(0.01),
    )
}

impl Guarded {
    /// Estimates every arm of `roster` on every guardrail from the pooled `cell`.
    pub(super) fn assess(
        optimization: &Optimization,
        roster: &Roster,
        cell: &Cell,
        baseline: Option<u32>,
        seed: u64,
    ) -> Guarded {
        let mut guarded = Guarded::default();
        for (index, guardrail) in optimization.guardrails.iter().enumerate() {
            let evidence: Vec<Sums> = roster
                .arms
                .iter()
                .map(|a| cell.guardrail(a.id, index).1)
                .collect();
            let prior = model::NumericPrior::pooled(&evidence);
            let (alpha, beta) = bool_prior(&evidence);
            guarded.priors.push(prior);
            let fitted = roster.arms.iter().map(|a| {
                let (raw, evidence) = cell.guardrail(a.id, index);
                let fitted = match guardrail.metric.kind {
                    MetricKind::Bool => model::fit_bool(alpha, beta, &evidence),
                    MetricKind::Numeric => prior.fit(&evidence),
                };
                (a.id, raw, evidence, fitted)
            });
            guarded.push(guardrail, fitted.collect(), baseline, seed);
        }
        guarded
    }

    /// The estimates in context `cell`: each arm's cell posterior shrunk toward its pooled one (in
    /// `self`) with guardrail i's strength `strengths[i]`, and P(harm) against the cell's baseline.
    pub(super) fn in_cell(
        &self,
        optimization: &Optimization,
        (context, cell): (&ContextKey, &Cell),
        strengths: &[f64],
        (baseline, seed): (Option<u32>, u64),
    ) -> Guarded {
        let mut guarded = Guarded {
            estimates: BTreeMap::new(),
            priors: self.priors.clone(),
        };
        let seed = stream_seed(seed, context.as_str());
        for (index, guardrail) in optimization.guardrails.iter().enumerate() {
            let fitted = self.estimates.iter().map(|(id, estimates)| {
                let pooled = &estimates[index];
                let (raw, evidence) = cell.guardrail(*id, index);
                let strength = strengths[index];
                let fitted = match guardrail.metric.kind {
                    MetricKind::Bool => model::fit_bool_cell(&pooled.fitted, strength, &evidence),
                    MetricKind::Numeric => model::fit_numeric_cell(
                        &self.priors[index],
                        &pooled.evidence,
                        strength,
                        &evidence,
                    ),
                };
                (*id, raw, evidence, fitted)
            });
            guarded.push(guardrail, fitted.collect(), baseline, seed);
        }
        guarded
    }

    /// The empirical-Bayes strength of each guardrail across the context `cells` (infinite when
    /// the cells do not differ: every cell then has the pooled posterior).
    pub(super) fn strengths(
        optimization: &Optimization,
        roster: &Roster,
        cells: &[&Cell],
    ) -> Vec<f64> {
        (0..optimization.guardrails.len())
            .map(|index| {
                let arms: Vec<Vec<Sums>> = roster
                    .arms
                    .iter()
                    .map(|a| cells.iter().map(|c| c.guardrail(a.id, index).1).collect())
                    .collect();
                let bool_metric = optimization.guardrails[index].metric.kind == MetricKind::Bool;
                model::prior_strength(&arms, bool_metric).unwrap_or(f64::INFINITY)
            })
            .collect()
    }

    /// Adds every arm's estimate on `guardrail` from its fitted posterior.
    fn push(
        &mut self,
        guardrail: &Guardrail,
        fitted: Vec<(u32, Sums, Sums, model::Fitted)>,
        baseline: Option<u32>,
        seed: u64,
    ) {
        let base = baseline.and_then(|b| fitted.iter().find(|(id, ..)| *id == b));
        let base_posterior = base.map(|(.., f)| f.posterior);
        for (id, raw, evidence, fitted) in fitted {
            let p_harm = base_posterior
                .filter(|_| Some(id) != baseline)
                .map(|b| model::p_harm(&fitted.posterior, &b, &guardrail.harm, seed));
            self.estimates.entry(id).or_default().push(Estimate {
                fitted,
                evidence,
                conversions: raw.conversions,
                p_harm,
                harmful: p_harm.is_some_and(|p| p >= guardrail.confidence.get()),
            });
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Better, Harm};

    /// Refunds at 2%: an arm without data is not harmful under the pooled prior, where the
    /// uniform Beta(1, 1) would call it harmful before its first unit.
    #[test]
    fn an_arm_without_data_is_not_harmful_on_a_rare_event() {
        let baseline = Sums {
            units: 4000.0,
            conversions: 80.0,
            ..Sums::default()
        };
        let (alpha, beta) = bool_prior(&[baseline, Sums::default()]);
        assert!((alpha - 0.04).abs() < 1e-15 && (beta - 1.96).abs() < 1e-15);
        let harm = Harm {
            better: Better::Lower,
            tolerance: Tolerance::Relative(0.1),
        };
        let p = |alpha: f64, beta: f64| {
            let base = model::fit_bool(alpha, beta, &baseline).posterior;
            let new = model::fit_bool(alpha, beta, &Sums::default()).posterior;
            model::p_harm(&new, &base, &harm, 1)
        };
        assert!(p(alpha, beta) < 0.5, "{}", p(alpha, beta));
        assert!(p(1.0, 1.0) > 0.95, "{}", p(1.0, 1.0));
    }
}
