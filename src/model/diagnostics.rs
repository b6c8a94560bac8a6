//! Run diagnostics: the lift of the bandit over the holdout (stratified by the holdout share that
//! served each batch) and the sample-ratio-mismatch test of the served split.

use statrs::function::gamma::gamma_ur;

use super::fit::Sums;

/// The two-sided 95% normal quantile.
const Z95: f64 = 1.959_963_984_540_054;

/// Units needed on each side before a lift is reported.
pub const MIN_LIFT_UNITS: f64 = 100.0;

/// Units and reward sums of both sides in one stratum (a period with one holdout share).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stratum {
    pub treated: Sums,
    pub holdout: Sums,
}

/// Bandit (or one arm) against the holdout, with 95% intervals by the delta method.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Lift {
    /// Difference of the per-unit rates (or means), treated − holdout.
    pub difference: f64,
    pub difference_low: f64,
    pub difference_high: f64,
    /// treated / holdout − 1; `None` when the holdout's rate is not positive.
    pub relative: Option<f64>,
    pub relative_low: Option<f64>,
    pub relative_high: Option<f64>,
    pub treated_units: f64,
    pub holdout_units: f64,
    pub strata: usize,
}

/// The mean per unit and the variance of that mean, from a side's sums (`bool` rewards use the
/// conversions as 0/1 values).
fn mean_and_variance(sums: &Sums, bool_reward: bool) -> (f64, f64) {
    let n = sums.units;
    let (sum, sq) = if bool_reward {
        (sums.conversions, sums.conversions)
    } else {
        (sums.value_sum, sums.value_sq_sum)
    };
    let mean = sum / n;
    let variance = if n > 1.0 {
        ((sq - n * mean * mean) / (n - 1.0)).max(0.0)
    } else {
        0.0
    };
    (mean, variance / n)
}

/// Why a diagnostic has no value: the data cannot support it yet.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NotEstimated {
    #[error(
        "needs at least {MIN_LIFT_UNITS} mature units on each side (treated {treated}, holdout {holdout})"
    )]
    TooFewLiftUnits { treated: f64, holdout: f64 },
    #[error("an expected count is {smallest:.2}, under 5: too few units to test")]
    SmallExpectedCount { smallest: f64 },
    #[error("fewer than two arms were served")]
    FewerThanTwoArms,
}

/// The lift of the treated side over the holdout, standardized over strata: each stratum that has
/// units on both sides weighs by its share of all units, so a holdout share that changed between
/// periods does not tilt the comparison toward the periods where the holdout was large.
/// `Err` says why there is no estimate.
pub fn lift(strata: &[Stratum], bool_reward: bool) -> Result<Lift, NotEstimated> {
    let treated_units: f64 = strata.iter().map(|s| s.treated.units).sum();
    let holdout_units: f64 = strata.iter().map(|s| s.holdout.units).sum();
    if treated_units < MIN_LIFT_UNITS || holdout_units < MIN_LIFT_UNITS {
        return Err(NotEstimated::TooFewLiftUnits {
            treated: treated_units,
            holdout: holdout_units,
        });
    }
    let both: Vec<&Stratum> = strata
        .iter()
        .filter(|s| s.treated.units > 0.0 && s.holdout.units > 0.0)
        .collect();
    let total: f64 = both.iter().map(|s| s.treated.units + s.holdout.units).sum();
    let (mut a, mut b, mut var_a, mut var_b) = (0.0, 0.0, 0.0, 0.0);
    for s in &both {
        let w = (s.treated.units + s.holdout.units) / total;
        let (mean_t, var_t) = mean_and_variance(&s.treated, bool_reward);
        let (mean_h, var_h) = mean_and_variance(&s.holdout, bool_reward);
        a += w * mean_t;
        b += w * mean_h;
        var_a += w * w * var_t;
        var_b += w * w * var_h;
    }
    let se = (var_a + var_b).sqrt();
    let difference = a - b;
    let (relative, relative_low, relative_high) = if b > 0.0 {
        let ratio = a / b;
        // Delta method for A / B with independent sides: Var ≈ Var A / B² + A² Var B / B⁴.
        let se_ratio = (var_a / (b * b) + a * a * var_b / (b * b * b * b)).sqrt();
        (
            Some(ratio - 1.0),
            Some(ratio - 1.0 - Z95 * se_ratio),
            Some(ratio - 1.0 + Z95 * se_ratio),
        )
    } else {
        (None, None, None)
    };
    Ok(Lift {
        difference,
        difference_low: difference - Z95 * se,
        difference_high: difference + Z95 * se,
        relative,
        relative_low,
        relative_high,
        treated_units,
        holdout_units,
        strata: both.len(),
    })
}

/// Significance level at which a sample-ratio mismatch is flagged.
pub const SRM_ALPHA: f64 = 0.001;

/// Pearson's chi-square of observed units against the served weights.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Srm {
    pub statistic: f64,
    pub degrees_of_freedom: usize,
    pub p_value: f64,
    pub flagged: bool,
    /// Units counted on arms served at weight 0: a mismatch by itself, whatever the statistic.
    #[serde(default)]
    pub unexpected_units: f64,
}

/// Tests observed counts against expected counts (`observed[i]` against `expected[i]`, where the
/// expected counts sum to the observed total). `Err` says why the test does not apply: fewer than
/// two categories, or an expected count under 5. Units in a category expected at 0 are a mismatch
/// by themselves (`unexpected_units`, p = 0), however few units the others expect; the statistic,
/// over the other categories, stays finite.
pub fn srm(observed: &[f64], expected: &[f64]) -> Result<Srm, NotEstimated> {
    let mut statistic = 0.0;
    let mut categories = 0;
    let mut unexpected_units = 0.0;
    let mut smallest = f64::INFINITY;
    for (&o, &e) in observed.iter().zip(expected) {
        if e <= 0.0 {
            unexpected_units += o.max(0.0);
            continue;
        }
        smallest = smallest.min(e);
        categories += 1;
        statistic += (o - e) * (o - e) / e;
    }
    if unexpected_units == 0.0 && smallest < 5.0 {
        return Err(NotEstimated::SmallExpectedCount { smallest });
    }
    if unexpected_units > 0.0 {
        return Ok(Srm {
            statistic,
            degrees_of_freedom: categories.max(2) - 1,
            p_value: 0.0,
            flagged: true,
            unexpected_units,
        });
    }
    if categories < 2 {
        return Err(NotEstimated::FewerThanTwoArms);
    }
    let df = categories - 1;
    // The upper regularized gamma function is the chi-square survival function (statrs rejects x = 0).
    let p_value = if statistic > 0.0 {
        gamma_ur(df as f64 / 2.0, statistic / 2.0)
    } else {
        1.0
    };
    Ok(Srm {
        statistic,
        degrees_of_freedom: df,
        p_value,
        flagged: p_value < SRM_ALPHA,
        unexpected_units: 0.0,
    })
}
