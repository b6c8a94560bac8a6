//! Contextual models: each (context cell, arm) posterior is shrunk toward the arm's pooled posterior,
//! with a prior strength estimated from the data across cells (empirical Bayes).

use super::fit::{Fitted, NumericPrior, Sums};
use super::posterior::Posterior;

/// The prior strength `m`, in units, of a cell's prior around its arm's pooled mean, from the
/// one-way random-effects ANOVA (method-of-moments) estimator pooled over arms: with `C_a` cells of
/// arm `a` holding `n_c` units and means `ȳ_c`,
///
/// - within-cell variance σ² = Σ_a Σ_c (Σy² − n_c ȳ_c²) / Σ_a (N_a − C_a),
/// - between-cell variance τ² = max(0, (Σ_a Σ_c n_c (ȳ_c − ȳ_a)² − σ² Σ_a (C_a − 1)) / Σ_a (N_a − Σ_c n_c² / N_a)),
/// - m = σ² / τ² (infinite when τ² = 0: the cells do not differ beyond noise).
///
/// Bool rewards use the conversions as 0/1 values. `None` when no arm has two cells with units.
pub fn prior_strength(arms: &[Vec<Sums>], bool_reward: bool) -> Option<f64> {
    let (mut ss_within, mut df_within) = (0.0, 0.0);
    let (mut ss_between, mut df_between, mut n0) = (0.0, 0.0, 0.0);
    for cells in arms {
        let cells: Vec<&Sums> = cells.iter().filter(|c| c.units > 0.0).collect();
        if cells.len() < 2 {
            continue;
        }
        let value = |c: &Sums| {
            if bool_reward {
                (c.conversions, c.conversions)
            } else {
                (c.value_sum, c.value_sq_sum)
            }
        };
        let total: f64 = cells.iter().map(|c| c.units).sum();
        let grand = cells.iter().map(|c| value(c).0).sum::<f64>() / total;
        for c in &cells {
            let (sum, sq) = value(c);
            let mean = sum / c.units;
            ss_within += (sq - c.units * mean * mean).max(0.0);
            ss_between += c.units * (mean - grand).powi(2);
        }
        df_within += total - cells.len() as f64;
        df_between += cells.len() as f64 - 1.0;
        n0 += total - cells.iter().map(|c| c.units * c.units).sum::<f64>() / total;
    }
    if df_between == 0.0 || df_within <= 0.0 || n0 <= 0.0 {
        return None;
    }
    let sigma2 = ss_within / df_within;
    let tau2 = ((ss_between - sigma2 * df_between) / n0).max(0.0);
    Some(if tau2 > 0.0 {
        sigma2 / tau2
    } else {
        f64::INFINITY
    })
}

/// A cell's posterior for a bool reward, centred on the arm's pooled posterior without the cell's
/// own data (leave-one-out, so a cell's units are not counted twice): with that posterior
/// Beta(α′, β′) of mean p̄′ and m′ = min(m, α′ + β′),
/// Beta(m′ p̄′ + x, m′ (1 − p̄′) + n − x). At full strength this is exactly the pooled posterior.
pub fn fit_bool_cell(pooled: &Fitted, strength: f64, cell: &Sums) -> Fitted {
    let a = (pooled.alpha - cell.conversions).max(f64::MIN_POSITIVE);
    let b = (pooled.beta - (cell.units - cell.conversions).max(0.0)).max(f64::MIN_POSITIVE);
    let m = strength.min(a + b);
    let alpha = m * a / (a + b) + cell.conversions;
    let beta = m * b / (a + b) + (cell.units - cell.conversions).max(0.0);
    Fitted {
        posterior: Posterior::Beta { alpha, beta },
        alpha,
        beta,
    }
}

/// A cell's posterior for a numeric reward: the Normal–Inverse-Gamma update of a prior centred on
/// the mean of the arm's pooled posterior without the cell's data (`pooled` = the arm's sums), with
/// κ0 = min(m, 1 + N_a − n_c) and the pooled prior's β0.
pub fn fit_numeric_cell(prior: &NumericPrior, pooled: &Sums, strength: f64, cell: &Sums) -> Fitted {
    let mut rest = *pooled;
    rest.add(cell, -1.0);
    rest.units = rest.units.max(0.0);
    NumericPrior {
        mu0: prior.fit(&rest).posterior.mean(),
        kappa0: strength.min(1.0 + rest.units).max(1e-9),
        beta0: prior.beta0,
    }
    .fit(cell)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(units: f64, conversions: f64) -> Sums {
        Sums {
            units,
            conversions,
            value_sum: conversions,
            value_sq_sum: conversions,
        }
    }

    #[test]
    fn identical_cells_pool_fully_and_different_cells_do_not() {
        let same = vec![vec![
            cell(1000.0, 100.0),
            cell(1000.0, 100.0),
            cell(1000.0, 100.0),
        ]];
        assert_eq!(prior_strength(&same, true), Some(f64::INFINITY));
        let apart = vec![vec![
            cell(1000.0, 50.0),
            cell(1000.0, 150.0),
            cell(1000.0, 300.0),
        ]];
        let m = prior_strength(&apart, true).unwrap();
        // σ² ≈ mean p(1 − p) ≈ 0.13, τ² ≈ var(0.05, 0.15, 0.30) ≈ 0.016: m ≈ 8 units.
        assert!(m > 4.0 && m < 16.0, "{m}");
        assert_eq!(prior_strength(&[vec![cell(10.0, 1.0)]], true), None);
    }

    #[test]
    fn a_cell_without_data_has_the_pooled_posterior_at_full_strength() {
        let beta = |alpha: f64, beta: f64| Fitted {
            posterior: Posterior::Beta { alpha, beta },
            alpha,
            beta,
        };
        let pooled = beta(91.0, 111.0);
        let fitted = fit_bool_cell(&pooled, f64::INFINITY, &Sums::default());
        assert_eq!(fitted.posterior, pooled.posterior);
        // A cell with 60 of 100: at full strength its posterior is the pooled one, not 60 more.
        let full = fit_bool_cell(&pooled, f64::INFINITY, &cell(100.0, 60.0));
        assert_eq!(full.posterior, pooled.posterior);
        // At strength 10 its prior is the rest of the arm, Beta(31, 71), scaled to 10 units.
        let shrunk = fit_bool_cell(&pooled, 10.0, &cell(100.0, 60.0));
        let expected_mean = (10.0 * 31.0 / 102.0 + 60.0) / (10.0 + 100.0);
        assert!((shrunk.posterior.mean() - expected_mean).abs() < 1e-15);
    }
}
