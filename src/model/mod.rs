//! Posteriors, P(best), expected loss and P(harm): pure functions of sufficient statistics.

mod additive;
mod diagnostics;
mod fit;
mod harm;
mod pbest;
mod periods;
mod posterior;
mod quadrature;
mod shrink;
mod special;

pub use additive::{predict as predict_additive, Observed};
pub use diagnostics::{lift, srm, Lift, NotEstimated, Srm, Stratum, MIN_LIFT_UNITS, SRM_ALPHA};
pub use fit::{decay_weight, fit_bool, Fitted, NumericPrior, Sums};
pub use harm::{by_quadrature as p_harm_by_quadrature, p_harm, Better, Harm, Tolerance};
pub use pbest::{by_quadrature, compare, monte_carlo, Comparison, Method, MONTE_CARLO_DRAWS};
pub use periods::{mix_factors, period_levels, standardize, PeriodCell};
pub use posterior::{Interval, Posterior};
pub use shrink::{fit_bool_cell, fit_numeric_cell, prior_strength};
