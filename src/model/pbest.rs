//! P(arm is best) and expected loss over a set of arm posteriors.
//!
//! `P(k best) = ∫ f_k(x) Π_{j≠k} F_j(x) dx` and `E[max] = ∫ x · d/dx Π_j F_j(x) dx`, both computed by
//! adaptive Clenshaw–Curtis quadrature over the region where the maximum lives. A seeded Monte Carlo
//! estimate is the fallback when quadrature cannot reach its accuracy.

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use super::posterior::{Density, Posterior};
use super::quadrature::{self, Panel, POINTS};

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
    if !(low.is_finite() && high.is_finite() && low < high) {
        return None;
    }
    let active: Vec<usize> = (0..arms.len()).filter(|&k| tails[k].1 > low).collect();
    let scale = arms
        .iter()
        .map(|a| a.mean().abs() + a.spread())
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE);
    // Panels split at the arms' means, so that no density's peak falls between sample points.
    let mut breakpoints = vec![low, high];
    // When every arm reaches down to 0, a density may be unbounded there (a < 1): start instead
    // where the product of the CDFs (the mass of the maximum below) is under 1e-15, with panels
    // graded geometrically from there.
    let low = if low == 0.0 && matches!(arms[0], Posterior::Beta { .. }) {
        let below = |x: f64| arms.iter().map(|a| a.cdf(x)).product::<f64>();
        let mut bottom = 0.1 * high;
        while bottom > 1e-300 && below(bottom) > 1e-15 {
            bottom *= 0.1;
        }
        breakpoints[0] = bottom;
        breakpoints.extend(
            std::iter::successors(Some(bottom * 10.0), |x| Some(x * 10.0))
                .take_while(|&x| x < high),
        );
        bottom
    } else {
        low
    };
    breakpoints.extend(
        active
            .iter()
            .map(|&k| arms[k].mean())
            .filter(|&m| m > low && m < high),
    );
    breakpoints.sort_by(f64::total_cmp);
    breakpoints.dedup();
    let mut integrand = Maximum::new(arms, &active, &tails, low, scale);
    let integrals = quadrature::integrate(&mut integrand, &breakpoints, TOLERANCE)?;
    // Each arm's density, integrated along the way, must have brought its CDF to 1 at the top.
    if !integrand.cdf_left.iter().all(|c| (c - 1.0).abs() <= 1e-9) {
        return None;
    }
    let n = active.len();
    let total: f64 = integrals[..n].iter().sum();
    if !((total - 1.0).abs() <= 1e-8 && integrals[n].is_finite()) {
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

/// The integrand of P(best) and E[max] over the active arms: component `i` is
/// `f_i(x) Π_{j≠i} F_j(x)`, the last is `x · d/dx Π_j F_j(x) / scale`. Each CDF is carried from
/// panel to panel as the running integral of its density, starting from the exact CDF at the
/// bottom of the range, so the incomplete beta function is evaluated once per arm, not per point.
struct Maximum {
    densities: Vec<Density>,
    /// Each arm's upper tail: above it the density is taken as 0 and the CDF as 1.
    tops: Vec<f64>,
    scale: f64,
    /// The CDFs at the left end of the next panel.
    cdf_left: Vec<f64>,
    /// The CDFs at the right end of the panel last evaluated.
    cdf_right: Vec<f64>,
    /// Densities and CDFs at the points of the current panel, arm-major.
    pdf: Vec<f64>,
    cdf: Vec<f64>,
    prefixes: Vec<f64>,
}

impl Maximum {
    fn new(
        arms: &[Posterior],
        active: &[usize],
        tails: &[(f64, f64)],
        low: f64,
        scale: f64,
    ) -> Maximum {
        let n = active.len();
        Maximum {
            densities: active.iter().map(|&k| arms[k].density()).collect(),
            tops: active.iter().map(|&k| tails[k].1).collect(),
            scale,
            cdf_left: active.iter().map(|&k| arms[k].cdf(low)).collect(),
            cdf_right: vec![0.0; n],
            pdf: vec![0.0; n * POINTS],
            cdf: vec![0.0; n * POINTS],
            prefixes: vec![0.0; n],
        }
    }
}

impl quadrature::Integrand for Maximum {
    fn dims(&self) -> usize {
        self.densities.len() + 1
    }

    fn evaluate(&mut self, panel: &Panel, samples: &mut [f64]) -> f64 {
        let n = self.densities.len();
        let mut error = 0.0;
        for i in 0..n {
            let pdf = &mut self.pdf[i * POINTS..(i + 1) * POINTS];
            let cdf = &mut self.cdf[i * POINTS..(i + 1) * POINTS];
            if panel.low >= self.tops[i] {
                pdf.fill(0.0);
                cdf.fill(1.0);
            } else {
                for (p, &x) in pdf.iter_mut().zip(&panel.points) {
                    *p = self.densities[i].at(x);
                }
                error += panel.unresolved(pdf);
                panel.running(pdf, cdf);
                for c in cdf.iter_mut() {
                    *c = (*c + self.cdf_left[i]).clamp(0.0, 1.0);
                }
            }
            self.cdf_right[i] = cdf[POINTS - 1];
        }
        // samples[i] = f_i Π_{j≠i} F_j at each point, from prefix and suffix products of the CDFs.
        for (point, &x) in panel.points.iter().enumerate() {
            let mut running = 1.0;
            for (i, p) in self.prefixes.iter_mut().enumerate() {
                *p = running;
                running *= self.cdf[i * POINTS + point];
            }
            let mut suffix = 1.0;
            let mut density_of_max = 0.0;
            for i in (0..n).rev() {
                let value = self.pdf[i * POINTS + point] * self.prefixes[i] * suffix;
                samples[i * POINTS + point] = value;
                density_of_max += value;
                suffix *= self.cdf[i * POINTS + point];
            }
            samples[n * POINTS + point] = x * density_of_max / self.scale;
        }
        error
    }

    fn accept(&mut self) {
        self.cdf_left.copy_from_slice(&self.cdf_right);
    }
}

/// Bounds outside which an arm's CDF is 0 or 1 to within 1e-15, which the integrand then uses
/// without evaluating the incomplete beta function: mean ∓ k spreads for k = 8, 12, 18, …, each
/// checked with one CDF evaluation (heavy tails simply take more steps), clamped to the support.
pub(super) fn tails(arm: &Posterior) -> (f64, f64) {
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
