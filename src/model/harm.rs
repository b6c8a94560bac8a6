//! P(harm): the posterior probability that an arm is worse than the baseline arm on a guardrail
//! metric by more than the tolerated harm (docs/statistics.md, "Guardrails").
//!
//! With `θ_a` the arm's and `θ_b` the baseline's expected value and `t(x)` the least harmless value
//! of the arm when the baseline's is `x`, `P(harm) = ∫ f_b(x) G_a(t(x)) dx`, where `G_a` is the arm's
//! CDF when higher is better (harm is `θ_a < t(θ_b)`) and its survival function when lower is
//! better (harm is `θ_a > t(θ_b)`). The integral is one-dimensional and is computed by the same
//! adaptive Clenshaw–Curtis quadrature as P(best); a seeded Monte Carlo estimate is the fallback.

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use super::pbest::{tails, MONTE_CARLO_DRAWS};
use super::posterior::{Density, Posterior};
use super::quadrature::{self, Panel, POINTS};

/// Which way a guardrail metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Higher,
    Lower,
}

/// How much worse than the baseline an arm may be before it harms.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tolerance {
    /// A share of the baseline's value (of its magnitude, for a value below 0), in `[0, 1)`.
    Relative(f64),
    /// A difference in the metric's units, at least 0.
    Absolute(f64),
}

/// What counts as harm on one guardrail.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Harm {
    pub better: Better,
    pub tolerance: Tolerance,
}

impl Harm {
    /// `t(x)`: the worst value the arm may have without harm when the baseline's is `x`.
    pub fn threshold(&self, x: f64) -> f64 {
        let margin = match self.tolerance {
            Tolerance::Relative(share) => share * x.abs(),
            Tolerance::Absolute(difference) => difference,
        };
        match self.better {
            Better::Higher => x - margin,
            Better::Lower => x + margin,
        }
    }

    /// The baseline value `x` whose threshold is `y` (`t` is increasing, so there is one).
    fn baseline_at(&self, y: f64) -> f64 {
        let sign = match self.better {
            Better::Higher => -1.0,
            Better::Lower => 1.0,
        };
        match self.tolerance {
            Tolerance::Absolute(difference) => y - sign * difference,
            // t(x) = x (1 + sign·share) for x ≥ 0 and x (1 − sign·share) below.
            Tolerance::Relative(share) if y >= 0.0 => y / (1.0 + sign * share),
            Tolerance::Relative(share) => y / (1.0 - sign * share),
        }
    }

    /// Whether an arm value `arm` harms against a baseline value `baseline`.
    pub fn harms(&self, arm: f64, baseline: f64) -> bool {
        let threshold = self.threshold(baseline);
        match self.better {
            Better::Higher => arm < threshold,
            Better::Lower => arm > threshold,
        }
    }
}

/// Absolute accuracy asked of the quadrature.
const TOLERANCE: f64 = 1e-12;

/// P(harm) of `arm` against `baseline`, exactly where the quadrature can resolve it; `seed`
/// drives the Monte Carlo fallback.
pub fn p_harm(arm: &Posterior, baseline: &Posterior, harm: &Harm, seed: u64) -> f64 {
    by_quadrature(arm, baseline, harm)
        .unwrap_or_else(|| monte_carlo(arm, baseline, harm, MONTE_CARLO_DRAWS, seed))
}

/// The deterministic path; `None` when the integrand is too rough for the accuracy asked.
pub fn by_quadrature(arm: &Posterior, baseline: &Posterior, harm: &Harm) -> Option<f64> {
    let (mut low, high) = tails(baseline);
    if !(low.is_finite() && high.is_finite() && low < high) {
        return None;
    }
    let mut breakpoints = Vec::new();
    // A Beta density may be unbounded at 0 (a < 1): start where the baseline's CDF is under
    // 1e-15 instead, with panels graded geometrically from there.
    if low == 0.0 {
        low = 0.1 * high;
        while low > 1e-300 && baseline.cdf(low) > 1e-15 {
            low *= 0.1;
        }
        breakpoints.extend(
            std::iter::successors(Some(low * 10.0), |x| Some(x * 10.0)).take_while(|&x| x < high),
        );
    }
    breakpoints.extend([low, high, baseline.mean()]);
    // Where the arm's CDF turns, seen from the baseline's axis.
    let (mean, spread) = (arm.mean(), arm.spread());
    breakpoints.extend(
        [-8.0, -4.0, -1.0, 0.0, 1.0, 4.0, 8.0].map(|k| harm.baseline_at(mean + k * spread)),
    );
    breakpoints.retain(|x| (low..=high).contains(x));
    breakpoints.sort_by(f64::total_cmp);
    breakpoints.dedup();
    let mut integrand = Integrand {
        density: baseline.density(),
        arm,
        harm,
    };
    let integral = quadrature::integrate(&mut integrand, &breakpoints, TOLERANCE)?;
    let p = integral[0];
    (p > -1e-9 && p < 1.0 + 1e-9).then(|| p.clamp(0.0, 1.0))
}

/// The seeded Monte Carlo estimate with `draws` joint draws.
pub fn monte_carlo(
    arm: &Posterior,
    baseline: &Posterior,
    harm: &Harm,
    draws: u64,
    seed: u64,
) -> f64 {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let harmful = (0..draws)
        .filter(|_| {
            let (a, b) = (arm.sample(&mut rng), baseline.sample(&mut rng));
            harm.harms(a, b)
        })
        .count();
    harmful as f64 / draws as f64
}

/// `f_b(x) G_a(t(x))`.
struct Integrand<'a> {
    density: Density,
    arm: &'a Posterior,
    harm: &'a Harm,
}

impl Integrand<'_> {
    /// `G_a(y)`: the arm's probability of a value below `y` (higher is better) or above it.
    fn arm_beyond(&self, y: f64) -> f64 {
        let below = match self.arm {
            Posterior::Beta { .. } if y <= 0.0 => 0.0,
            Posterior::Beta { .. } if y >= 1.0 => 1.0,
            arm => arm.cdf(y),
        };
        match self.harm.better {
            Better::Higher => below,
            Better::Lower => 1.0 - below,
        }
    }
}

impl quadrature::Integrand for Integrand<'_> {
    fn dims(&self) -> usize {
        1
    }

    fn evaluate(&mut self, panel: &Panel, samples: &mut [f64]) -> f64 {
        for (sample, &x) in samples[..POINTS].iter_mut().zip(&panel.points) {
            *sample = self.density.at(x) * self.arm_beyond(self.harm.threshold(x));
        }
        0.0
    }

    fn accept(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    const HIGHER_BY: fn(f64) -> Harm = |share| Harm {
        better: Better::Higher,
        tolerance: Tolerance::Relative(share),
    };

    #[test]
    fn the_threshold_inverts() {
        for harm in [
            HIGHER_BY(0.1),
            Harm {
                better: Better::Lower,
                tolerance: Tolerance::Relative(0.25),
            },
            Harm {
                better: Better::Lower,
                tolerance: Tolerance::Absolute(0.5),
            },
        ] {
            for x in [-3.0, -0.2, 0.0, 0.7, 12.0] {
                let back = harm.baseline_at(harm.threshold(x));
                assert!((back - x).abs() < 1e-12, "{harm:?} at {x}: {back}");
            }
        }
    }

    /// Two equal posteriors and no tolerance: harm is one side of a symmetric comparison.
    #[test]
    fn equal_arms_without_tolerance_harm_half_the_time() {
        let arm = Posterior::Beta {
            alpha: 30.0,
            beta: 70.0,
        };
        let p = by_quadrature(&arm, &arm, &HIGHER_BY(0.0)).unwrap();
        assert!((p - 0.5).abs() < 1e-11, "{p}");
    }

    #[test]
    fn monte_carlo_agrees_with_quadrature() {
        let arm = Posterior::StudentT {
            df: 40.0,
            location: 9.0,
            scale: 0.8,
        };
        let baseline = Posterior::StudentT {
            df: 60.0,
            location: 10.0,
            scale: 0.5,
        };
        let harm = HIGHER_BY(0.05);
        let exact = by_quadrature(&arm, &baseline, &harm).unwrap();
        let estimate = monte_carlo(&arm, &baseline, &harm, 200_000, 7);
        let se = (exact * (1.0 - exact) / 200_000.0).sqrt();
        assert!((estimate - exact).abs() < 4.0 * se, "{estimate} vs {exact}");
    }
}
