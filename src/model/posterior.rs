//! Posterior distributions of an arm's expected reward: Beta for bool rewards, Student-t for the mean
//! of a numeric reward under a Normal model with unknown variance.

use super::special::{beta_regularized, BetaDensity, StudentTDensity};
use rand::Rng;
use rand_distr::Distribution;
use statrs::function::erf::erf_inv;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum Posterior {
    Beta { alpha: f64, beta: f64 },
    StudentT { df: f64, location: f64, scale: f64 },
}

/// A posterior's density, ready to evaluate.
#[derive(Debug, Clone, Copy)]
pub enum Density {
    Beta(BetaDensity),
    StudentT(StudentTDensity),
}

impl Density {
    pub fn at(&self, x: f64) -> f64 {
        match self {
            Density::Beta(d) => d.at(x),
            Density::StudentT(d) => d.at(x),
        }
    }
}

/// An equal-tailed credible interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

impl Posterior {
    pub fn mean(&self) -> f64 {
        match *self {
            Posterior::Beta { alpha, beta } => alpha / (alpha + beta),
            Posterior::StudentT { location, .. } => location,
        }
    }

    /// A spread used to place quadrature breakpoints (standard deviation, or the t scale).
    pub fn spread(&self) -> f64 {
        match *self {
            Posterior::Beta { alpha, beta } => {
                let n = alpha + beta;
                (alpha * beta / (n * n * (n + 1.0))).sqrt()
            }
            Posterior::StudentT { scale, .. } => scale,
        }
    }

    /// The density, with its constants computed once (for loops that evaluate it many times).
    pub fn density(&self) -> Density {
        match *self {
            Posterior::Beta { alpha, beta } => Density::Beta(BetaDensity::new(alpha, beta)),
            Posterior::StudentT {
                df,
                location,
                scale,
            } => Density::StudentT(StudentTDensity::new(df, location, scale)),
        }
    }

    pub fn cdf(&self, x: f64) -> f64 {
        match *self {
            Posterior::Beta { alpha, beta } => beta_regularized(alpha, beta, x, 1.0 - x),
            Posterior::StudentT {
                df,
                location,
                scale,
            } => {
                let z = (x - location) / scale;
                let tail =
                    0.5 * beta_regularized(df / 2.0, 0.5, df / (df + z * z), z * z / (df + z * z));
                if z > 0.0 {
                    1.0 - tail
                } else {
                    tail
                }
            }
        }
    }

    /// The `p`-quantile: Newton's method on the CDF, kept inside a bracket that bisection shrinks
    /// whenever a Newton step would leave it; full double precision.
    pub fn quantile(&self, p: f64) -> f64 {
        let (mut low, mut high) = match *self {
            Posterior::Beta { .. } => (0.0, 1.0),
            Posterior::StudentT {
                location, scale, ..
            } => {
                let mut width = scale;
                while self.cdf(location - width) > p || self.cdf(location + width) < p {
                    width *= 2.0;
                    if !width.is_finite() {
                        break;
                    }
                }
                (location - width, location + width)
            }
        };
        let density = self.density();
        let spread = self.spread();
        let mut x = self.approximate_quantile(p);
        if !(x > low && x < high) {
            x = self.mean().clamp(low, high);
        }
        for _ in 0..200 {
            let gap = self.cdf(x) - p;
            if gap == 0.0 {
                return x;
            }
            if gap < 0.0 {
                low = x;
            } else {
                high = x;
            }
            let density = density.at(x);
            let newton = x - gap / density;
            let next = if density > 0.0 && newton > low && newton < high {
                newton
            } else {
                0.5 * (low + high)
            };
            // Newton's error after a step of 1e-9 spreads is of order 1e-18 spreads.
            if (next - x).abs() <= 1e-9 * spread
                || (next - x).abs() <= 4.0 * f64::EPSILON * x.abs()
                || high - low <= 4.0 * f64::EPSILON * x.abs()
            {
                return next;
            }
            x = next;
        }
        x
    }

    /// A start for `quantile`: the normal quantile with the Cornish–Fisher skewness term.
    fn approximate_quantile(&self, p: f64) -> f64 {
        let z = std::f64::consts::SQRT_2 * erf_inv(2.0 * p - 1.0);
        let skewness = match *self {
            Posterior::Beta { alpha, beta } => {
                2.0 * (beta - alpha) * (alpha + beta + 1.0).sqrt()
                    / ((alpha + beta + 2.0) * (alpha * beta).sqrt())
            }
            Posterior::StudentT { .. } => 0.0,
        };
        self.mean() + self.spread() * (z + skewness * (z * z - 1.0) / 6.0)
    }

    /// The equal-tailed interval holding `level` of the mass (0.95 for 95%).
    pub fn interval(&self, level: f64) -> Interval {
        let tail = (1.0 - level) / 2.0;
        Interval {
            low: self.quantile(tail),
            high: self.quantile(1.0 - tail),
        }
    }

    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match *self {
            Posterior::Beta { alpha, beta } => rand_distr::Beta::new(alpha, beta)
                .expect("a posterior has positive parameters")
                .sample(rng),
            Posterior::StudentT {
                df,
                location,
                scale,
            } => {
                let t: f64 = rand_distr::StudentT::new(df)
                    .expect("a posterior has positive degrees of freedom")
                    .sample(rng);
                location + scale * t
            }
        }
    }
}
