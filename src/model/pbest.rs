//! P(arm is best) and expected loss over a set of arm posteriors.
//!
//! `P(k best) = ∫ f_k(x) Π_{j≠k} F_j(x) dx` and `E[max] = ∫ x · d/dx Π_j F_j(x) dx`, both computed by
//! adaptive Gauss–Kronrod quadrature over the region where the maximum lives. A seeded Monte Carlo
//! estimate is the fallback when quadrature cannot reach its accuracy.

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use super::posterior::Posterior;
use super::quadrature;

/// How a comparison was computed, recorded in the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Quadrature,
    MonteCarlo { draws: u64, seed: u64 },
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Comparison {
    pub p_best: Vec<f64>,
    /// `E[max_j θ_j] − E[θ_k]`, in the metric's units.
    pub expected_loss: Vec<f64>,
    pub method: Method,
}

/// Absolute accuracy asked of the quadrature for every P(best) and for E[max] (relative to scale).
const TOLERANCE: f64 = 1e-11;
/// How many draws the Monte Carlo fallback takes.
pub const MONTE_CARLO_DRAWS: u64 = 200_000;

/// Compares the arms exactly where possible; `seed` drives the Monte Carlo fallback.
pub fn compare(arms: &[Posterior], seed: u64) -> Comparison {
    match arms.len() {
        0 => Comparison {
            p_best: Vec::new(),
            expected_loss: Vec::new(),
            method: Method::Quadrature,
        },
        1 => Comparison {
            p_best: vec![1.0],
            expected_loss: vec![0.0],
            method: Method::Quadrature,
        },
        _ => by_quadrature(arms).unwrap_or_else(|| monte_carlo(arms, MONTE_CARLO_DRAWS, seed)),
    }
}

/// The deterministic path; `None` when the integrand is too rough for the accuracy asked.
pub fn by_quadrature(arms: &[Posterior]) -> Option<Comparison> {
    let n = arms.len();
    let region = region(arms);
    let scale = arms
        .iter()
        .map(|a| a.mean().abs() + a.spread())
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE);
    let mut cdf = vec![0.0; n];
    let mut prefixes = vec![0.0; n];
    let integrand = |x: f64, out: &mut [f64]| {
        for (c, arm) in cdf.iter_mut().zip(arms) {
            *c = arm.cdf(x);
        }
        // out[k] = f_k(x) Π_{j≠k} F_j(x), from prefix and suffix products of the CDFs.
        let mut running = 1.0;
        for (p, c) in prefixes.iter_mut().zip(&cdf) {
            *p = running;
            running *= c;
        }
        let mut suffix = 1.0;
        let mut density_of_max = 0.0;
        for k in (0..n).rev() {
            let value = arms[k].pdf(x) * prefixes[k] * suffix;
            out[k] = value;
            density_of_max += value;
            suffix *= cdf[k];
        }
        out[n] = x * density_of_max / scale;
    };
    let mut breakpoints = region.breakpoints;
    breakpoints.dedup();
    let integrals = quadrature::integrate(integrand, &breakpoints, n + 1, TOLERANCE)?;
    let total: f64 = integrals[..n].iter().sum();
    if (total - 1.0).abs() > 1e-8 {
        return None;
    }
    let expected_max = integrals[n] * scale / total;
    Some(Comparison {
        p_best: integrals[..n]
            .iter()
            .map(|p| (p / total).clamp(0.0, 1.0))
            .collect(),
        expected_loss: arms
            .iter()
            .map(|a| (expected_max - a.mean()).max(0.0))
            .collect(),
        method: Method::Quadrature,
    })
}

struct Region {
    breakpoints: Vec<f64>,
}

/// Where the maximum of the arms lives: from the highest lower tail to the highest upper tail,
/// split at each arm's mean ± a few spreads so that narrow posteriors are resolved.
fn region(arms: &[Posterior]) -> Region {
    const TAIL: f64 = 1e-14;
    let tails: Vec<(f64, f64)> = arms
        .iter()
        .map(|a| match a {
            Posterior::Beta { .. } => {
                let (m, s) = (a.mean(), a.spread());
                ((m - 40.0 * s).max(0.0), (m + 40.0 * s).min(1.0))
            }
            Posterior::StudentT { .. } => (a.quantile(TAIL), a.quantile(1.0 - TAIL)),
        })
        .collect();
    let low = tails.iter().map(|t| t.0).fold(f64::NEG_INFINITY, f64::max);
    let high = tails.iter().map(|t| t.1).fold(f64::NEG_INFINITY, f64::max);
    let mut breakpoints = vec![low, high];
    for arm in arms {
        let (m, s) = (arm.mean(), arm.spread());
        for k in [-8.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 8.0] {
            let x = m + k * s;
            if x > low && x < high {
                breakpoints.push(x);
            }
        }
    }
    breakpoints.sort_by(f64::total_cmp);
    Region { breakpoints }
}

/// The seeded Monte Carlo estimate with `draws` joint draws.
pub fn monte_carlo(arms: &[Posterior], draws: u64, seed: u64) -> Comparison {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut wins = vec![0u64; arms.len()];
    let mut sum_max = 0.0;
    let mut sample = vec![0.0; arms.len()];
    for _ in 0..draws {
        for (s, arm) in sample.iter_mut().zip(arms) {
            *s = arm.sample(&mut rng);
        }
        let (best, max) = sample
            .iter()
            .enumerate()
            .fold(
                (0, f64::NEG_INFINITY),
                |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc },
            );
        wins[best] += 1;
        sum_max += max;
    }
    let expected_max = sum_max / draws as f64;
    Comparison {
        p_best: wins.iter().map(|&w| w as f64 / draws as f64).collect(),
        expected_loss: arms
            .iter()
            .map(|a| (expected_max - a.mean()).max(0.0))
            .collect(),
        method: Method::MonteCarlo { draws, seed },
    }
}
