//! Sufficient statistics → posteriors, for bool (Beta–Bernoulli) and numeric (Normal–Inverse-Gamma)
//! rewards, with optional exponential decay of old batches.

use super::posterior::Posterior;

/// Sums over an arm's units (possibly decay-weighted, so not necessarily whole numbers).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Sums {
    pub units: f64,
    pub conversions: f64,
    pub value_sum: f64,
    pub value_sq_sum: f64,
}

impl Sums {
    pub fn add(&mut self, other: &Sums, weight: f64) {
        self.units += weight * other.units;
        self.conversions += weight * other.conversions;
        self.value_sum += weight * other.value_sum;
        self.value_sq_sum += weight * other.value_sq_sum;
    }
}

/// A fitted arm: its posterior and the two parameters the report shows as `alpha` and `beta`
/// (Beta's α/β for bool rewards, the Normal–Inverse-Gamma αn/βn for numeric ones).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Fitted {
    pub posterior: Posterior,
    pub alpha: f64,
    pub beta: f64,
}

/// The weight of a batch that started `age_micros` before `as_of`, under a half-life.
pub fn decay_weight(age_micros: i64, half_life_micros: Option<i64>) -> f64 {
    match half_life_micros {
        Some(half) if half > 0 => 0.5f64.powf(age_micros.max(0) as f64 / half as f64),
        _ => 1.0,
    }
}

/// Beta–Bernoulli: Beta(α0 + conversions, β0 + units − conversions).
pub fn fit_bool(prior_alpha: f64, prior_beta: f64, sums: &Sums) -> Fitted {
    let alpha = prior_alpha + sums.conversions;
    let beta = prior_beta + (sums.units - sums.conversions).max(0.0);
    Fitted {
        posterior: Posterior::Beta { alpha, beta },
        alpha,
        beta,
    }
}

/// The Normal–Inverse-Gamma prior of numeric rewards (α0 = 1). An arm's mean then has a Student-t
/// posterior with 2αn degrees of freedom, location μn and scale √(βn / (αn κn)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NumericPrior {
    pub mu0: f64,
    /// 1 for an arm's prior; the empirical-Bayes strength for a context cell's.
    pub kappa0: f64,
    pub beta0: f64,
}

impl NumericPrior {
    /// μ0 = the pooled mean of the given (bandit) arms' units, β0 = their pooled variance (1 when
    /// undefined).
    pub fn pooled(arms: &[Sums]) -> NumericPrior {
        let mut pooled = Sums::default();
        for arm in arms {
            pooled.add(arm, 1.0);
        }
        let mu0 = if pooled.units > 0.0 {
            pooled.value_sum / pooled.units
        } else {
            0.0
        };
        let pooled_variance = if pooled.units > 1.0 {
            (pooled.value_sq_sum - pooled.value_sum * pooled.value_sum / pooled.units)
                / (pooled.units - 1.0)
        } else {
            f64::NAN
        };
        let beta0 = if pooled_variance.is_finite() && pooled_variance > 0.0 {
            pooled_variance
        } else {
            1.0
        };
        NumericPrior {
            mu0,
            kappa0: 1.0,
            beta0,
        }
    }

    pub fn fit(&self, arm: &Sums) -> Fitted {
        let (kappa0, alpha0, mu0, beta0) = (self.kappa0, 1.0, self.mu0, self.beta0);
        let n = arm.units;
        let (mean, squares) = if n > 0.0 {
            let mean = arm.value_sum / n;
            (mean, (arm.value_sq_sum - n * mean * mean).max(0.0))
        } else {
            (mu0, 0.0)
        };
        let kappa = kappa0 + n;
        let mu = (kappa0 * mu0 + n * mean) / kappa;
        let alpha = alpha0 + n / 2.0;
        let beta = beta0 + 0.5 * squares + kappa0 * n * (mean - mu0).powi(2) / (2.0 * kappa);
        Fitted {
            posterior: Posterior::StudentT {
                df: 2.0 * alpha,
                location: mu,
                scale: (beta / (alpha * kappa)).sqrt(),
            },
            alpha,
            beta,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_posterior_matches_hand_computation() {
        // Two arms: values {1, 3} and {2}. Pooled mean 2, pooled variance 1.
        let a = Sums {
            units: 2.0,
            conversions: 2.0,
            value_sum: 4.0,
            value_sq_sum: 10.0,
        };
        let b = Sums {
            units: 1.0,
            conversions: 1.0,
            value_sum: 2.0,
            value_sq_sum: 4.0,
        };
        let prior = NumericPrior::pooled(&[a, b]);
        let fitted = [prior.fit(&a), prior.fit(&b)];
        // Arm a: κn = 3, μn = (2 + 4)/3 = 2, αn = 2, βn = 1 + ½·2 + 0 = 2, scale = √(2/(2·3)).
        assert_eq!(fitted[0].alpha, 2.0);
        assert_eq!(fitted[0].beta, 2.0);
        match fitted[0].posterior {
            Posterior::StudentT {
                df,
                location,
                scale,
            } => {
                assert_eq!(df, 4.0);
                assert!((location - 2.0).abs() < 1e-15);
                assert!((scale - (1.0f64 / 3.0).sqrt()).abs() < 1e-15);
            }
            _ => panic!("numeric arms are Student-t"),
        }
    }

    #[test]
    fn decay_halves_at_the_half_life() {
        assert_eq!(decay_weight(10, Some(10)), 0.5);
        assert_eq!(decay_weight(10, None), 1.0);
    }
}
