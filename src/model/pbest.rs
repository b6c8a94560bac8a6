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
    let tails: Vec<(f64, f64)> = arms.iter().map(tails).collect();
    // The maximum lives above the highest lower tail; an arm whose upper tail lies below it is
    // never best (P < 1e-14) and is 1 in every product there, so it leaves the integral.
    let low = tails.iter().map(|t| t.0).fold(f64::NEG_INFINITY, f64::max);
    let high = tails.iter().map(|t| t.1).fold(f64::NEG_INFINITY, f64::max);
    let active: Vec<usize> = (0..arms.len()).filter(|&k| tails[k].1 > low).collect();
    let n = active.len();
    let normalizers: Vec<f64> = active.iter().map(|&k| arms[k].log_normalizer()).collect();
    let scale = arms
        .iter()
        .map(|a| a.mean().abs() + a.spread())
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE);
    let mut cdf = vec![0.0; n];
    let mut prefixes = vec![0.0; n];
    let integrand = |x: f64, out: &mut [f64]| {
        for (c, &k) in cdf.iter_mut().zip(&active) {
            let (below, above) = tails[k];
            *c = if x <= below {
                0.0
            } else if x >= above {
                1.0
            } else {
                arms[k].cdf(x)
            };
        }
        // out[i] = f_i(x) Π_{j≠i} F_j(x), from prefix and suffix products of the CDFs.
        let mut running = 1.0;
        for (p, c) in prefixes.iter_mut().zip(&cdf) {
            *p = running;
            running *= c;
        }
        let mut suffix = 1.0;
        let mut density_of_max = 0.0;
        for i in (0..n).rev() {
            let k = active[i];
            let inside = x > tails[k].0 && x < tails[k].1;
            let value = if inside && prefixes[i] * suffix > 0.0 {
                arms[k].pdf_normalized(x, normalizers[i]) * prefixes[i] * suffix
            } else {
                0.0
            };
            out[i] = value;
            density_of_max += value;
            suffix *= cdf[i];
        }
        out[n] = x * density_of_max / scale;
    };
    // Panels split at the arms' means; the adaptive rule refines where the integrand needs it.
    let mut breakpoints = vec![low, high];
    breakpoints.extend(
        active
            .iter()
            .map(|&k| arms[k].mean())
            .filter(|&m| m > low && m < high),
    );
    breakpoints.sort_by(f64::total_cmp);
    breakpoints.dedup();
    let integrals = quadrature::integrate(integrand, &breakpoints, n + 1, TOLERANCE)?;
    let total: f64 = integrals[..n].iter().sum();
    if (total - 1.0).abs() > 1e-8 {
        return None;
    }
    let expected_max = integrals[n] * scale / total;
    let mut p_best = vec![0.0; arms.len()];
    for (i, &k) in active.iter().enumerate() {
        p_best[k] = (integrals[i] / total).clamp(0.0, 1.0);
    }
    Some(Comparison {
        p_best,
        expected_loss: arms
            .iter()
            .map(|a| (expected_max - a.mean()).max(0.0))
            .collect(),
        method: Method::Quadrature,
    })
}

/// Bounds outside which an arm's CDF is 0 or 1 to within 1e-15, which the integrand then uses
/// without evaluating the incomplete beta function: mean ∓ k spreads for k = 8, 12, 18, …, each
/// checked with one CDF evaluation (heavy tails simply take more steps), clamped to the support.
fn tails(arm: &Posterior) -> (f64, f64) {
    const TAIL: f64 = 1e-15;
    let (mean, spread) = (arm.mean(), arm.spread());
    let support = match arm {
        Posterior::Beta { .. } => (0.0, 1.0),
        Posterior::StudentT { .. } => (f64::NEG_INFINITY, f64::INFINITY),
    };
    let mut low = support.0;
    let mut k = 8.0;
    while k < 1e12 {
        let x = mean - k * spread;
        if x <= support.0 {
            break;
        }
        if arm.cdf(x) <= TAIL {
            low = x;
            break;
        }
        k *= 1.5;
    }
    let mut high = support.1;
    let mut k = 8.0;
    while k < 1e12 {
        let x = mean + k * spread;
        if x >= support.1 {
            break;
        }
        if 1.0 - arm.cdf(x) <= TAIL {
            high = x;
            break;
        }
        k *= 1.5;
    }
    (low, high)
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
