//! Posterior distributions of an arm's expected reward: Beta for bool rewards, Student-t for the mean
//! of a numeric reward under a Normal model with unknown variance.

use rand::Rng;
use rand_distr::Distribution;
use statrs::function::beta::{beta_reg, ln_beta};
use statrs::function::gamma::ln_gamma;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum Posterior {
    Beta { alpha: f64, beta: f64 },
    StudentT { df: f64, location: f64, scale: f64 },
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

    /// The logarithm of the density's normalizing constant, to pass to `pdf_normalized`.
    pub fn log_normalizer(&self) -> f64 {
        match *self {
            Posterior::Beta { alpha, beta } => -ln_beta(alpha, beta),
            Posterior::StudentT { df, scale, .. } => {
                ln_gamma((df + 1.0) / 2.0)
                    - ln_gamma(df / 2.0)
                    - 0.5 * (df * std::f64::consts::PI).ln()
                    - scale.ln()
            }
        }
    }

    pub fn pdf(&self, x: f64) -> f64 {
        self.pdf_normalized(x, self.log_normalizer())
    }

    /// The density at `x`, given `log_normalizer()` (computed once per arm in hot loops).
    pub fn pdf_normalized(&self, x: f64, log_normalizer: f64) -> f64 {
        match *self {
            Posterior::Beta { alpha, beta } => {
                if x <= 0.0 || x >= 1.0 {
                    return 0.0;
                }
                ((alpha - 1.0) * x.ln() + (beta - 1.0) * (-x).ln_1p() + log_normalizer).exp()
            }
            Posterior::StudentT {
                df,
                location,
                scale,
            } => {
                let z = (x - location) / scale;
                (log_normalizer - (df + 1.0) / 2.0 * (z * z / df).ln_1p()).exp()
            }
        }
    }

    pub fn cdf(&self, x: f64) -> f64 {
        match *self {
            Posterior::Beta { alpha, beta } => {
                if x <= 0.0 {
                    0.0
                } else if x >= 1.0 {
                    1.0
                } else {
                    beta_reg(alpha, beta, x)
                }
            }
            Posterior::StudentT {
                df,
                location,
                scale,
            } => {
                let z = (x - location) / scale;
                let tail = 0.5 * beta_reg(df / 2.0, 0.5, df / (df + z * z));
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
        let normalizer = self.log_normalizer();
        let mut x = self.mean().clamp(low, high);
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
            let density = self.pdf_normalized(x, normalizer);
            let newton = x - gap / density;
            let next = if density > 0.0 && newton > low && newton < high {
                newton
            } else {
                0.5 * (low + high)
            };
            if (next - x).abs() <= 4.0 * f64::EPSILON * x.abs()
                || high - low <= 4.0 * f64::EPSILON * x.abs()
            {
                return next;
            }
            x = next;
        }
        x
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
