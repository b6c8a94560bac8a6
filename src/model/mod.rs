//! Posteriors, P(best) and expected loss: pure functions of sufficient statistics.

mod fit;
mod pbest;
mod posterior;
mod quadrature;

pub use fit::{decay_weight, fit_bool, fit_numeric, Fitted, Sums};
pub use pbest::{by_quadrature, compare, monte_carlo, Comparison, Method, MONTE_CARLO_DRAWS};
pub use posterior::{Interval, Posterior};
