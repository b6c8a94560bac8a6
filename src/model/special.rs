//! The special functions behind the posteriors, accurate to double precision for the large counts
//! a warehouse produces: the log-densities and the incomplete beta function are written around
//! the remainder of Stirling's series, so that no term of size `n ln n` is ever subtracted from
//! another (`ln Γ(10⁶)` alone is 1.3·10⁷, whose rounding would cost seven digits).

use statrs::function::gamma::ln_gamma;

const HALF_LN_TWO_PI: f64 = 0.918_938_533_204_672_8;

/// `δ(z) = ln Γ(z) − [(z − ½) ln z − z + ½ ln 2π]`, the remainder of Stirling's series, for z > 0.
pub fn stirling_remainder(z: f64) -> f64 {
    if z < 10.0 {
        return ln_gamma(z) - ((z - 0.5) * z.ln() - z + HALF_LN_TWO_PI);
    }
    // Σ B₂ₖ / (2k(2k−1) z^(2k−1)) for k = 1..8; the first omitted term is below 1e-19 at z = 10.
    const COEFFICIENTS: [f64; 8] = [
        1.0 / 12.0,
        -1.0 / 360.0,
        1.0 / 1260.0,
        -1.0 / 1680.0,
        1.0 / 1188.0,
        -691.0 / 360_360.0,
        1.0 / 156.0,
        -3617.0 / 122_400.0,
    ];
    let inverse_square = 1.0 / (z * z);
    let series = COEFFICIENTS
        .iter()
        .rev()
        .fold(0.0, |sum, c| sum * inverse_square + c);
    series / z
}

/// `ln[pᵃ qᵇ / B(a, b)]` with `p = a/(a+b)`, `q = b/(a+b)`: what remains of the Beta density's
/// normalization once the powers are centred on the mean.
fn centred_beta_constant(a: f64, b: f64) -> f64 {
    let n = a + b;
    0.5 * (a / n * b).ln() - HALF_LN_TWO_PI - stirling_remainder(a) - stirling_remainder(b)
        + stirling_remainder(n)
}

/// `ln(x/p)`, given also `x − p` (exact near `p`, where the quotient would lose digits).
fn log_ratio(x: f64, difference: f64, p: f64) -> f64 {
    if difference.abs() < 0.5 * p {
        (difference / p).ln_1p()
    } else {
        (x / p).ln()
    }
}

/// The log-density of Beta(a, b) at `x`, in the centred form
/// `(a−1) ln(x/p) + (b−1) ln(y/q) − ln p − ln q + ln[pᵃqᵇ/B(a,b)]`.
#[derive(Debug, Clone, Copy)]
pub struct BetaDensity {
    a: f64,
    b: f64,
    p: f64,
    q: f64,
    constant: f64,
}

impl BetaDensity {
    pub fn new(a: f64, b: f64) -> BetaDensity {
        let (p, q) = (a / (a + b), b / (a + b));
        BetaDensity {
            a,
            b,
            p,
            q,
            constant: centred_beta_constant(a, b) - p.ln() - q.ln(),
        }
    }

    /// The density at `x`; at the ends of the support, its limit (infinite where `a` or `b` < 1).
    pub fn at(&self, x: f64) -> f64 {
        if !(0.0..=1.0).contains(&x) {
            return 0.0;
        }
        // k ln r, taking 0 · ln 0 as 0 (the limit at an end of the support when k = 0).
        let power = |k: f64, ratio: f64| if k == 0.0 { 0.0 } else { k * ratio };
        // x − p and (1 − x) − q, each from the side where it is exact at the support's end.
        let (below, above) = if x < 0.5 {
            (x - self.p, self.p - x)
        } else {
            (self.q - (1.0 - x), (1.0 - x) - self.q)
        };
        (power(self.a - 1.0, log_ratio(x, below, self.p))
            + power(self.b - 1.0, log_ratio(1.0 - x, above, self.q))
            + self.constant)
            .exp()
    }
}

/// The log-density of Student's t with `df` degrees of freedom, `location` and `scale`.
#[derive(Debug, Clone, Copy)]
pub struct StudentTDensity {
    df: f64,
    location: f64,
    scale: f64,
    constant: f64,
}

impl StudentTDensity {
    pub fn new(df: f64, location: f64, scale: f64) -> StudentTDensity {
        // ln Γ(z + ½) − ln Γ(z) with z = df/2, from Stirling's form without cancellation.
        let z = df / 2.0;
        let gamma_ratio = z * (0.5 / z).ln_1p() + 0.5 * z.ln() - 0.5 + stirling_remainder(z + 0.5)
            - stirling_remainder(z);
        StudentTDensity {
            df,
            location,
            scale,
            constant: gamma_ratio - 0.5 * (df * std::f64::consts::PI).ln() - scale.ln(),
        }
    }

    pub fn at(&self, x: f64) -> f64 {
        let z = (x - self.location) / self.scale;
        (self.constant - (self.df + 1.0) / 2.0 * (z * z / self.df).ln_1p()).exp()
    }
}

/// The regularized incomplete beta function `I_x(a, b)`, given `x` and `y = 1 − x` (so that a
/// caller holding `y` exactly, as Student's t does, loses nothing to `1 − x`); 0 for x ≤ 0 and 1
/// for y ≤ 0.
///
/// The prefactor `xᵃ yᵇ / (a B(a,b))` is taken in the centred form; the continued fraction
/// (modified Lentz) runs on the side of the mean where it converges fast and runs until it has.
pub fn beta_regularized(a: f64, b: f64, x: f64, y: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if y <= 0.0 {
        return 1.0;
    }
    if x > (a + 1.0) / (a + b + 2.0) {
        return 1.0 - beta_regularized(b, a, y, x);
    }
    let (p, q) = (a / (a + b), b / (a + b));
    // x − p, from whichever of x and y is the more precise.
    let d = if x < 0.5 { x - p } else { q - y };
    let log_prefactor =
        a * log_ratio(x, d, p) + b * log_ratio(y, -d, q) + centred_beta_constant(a, b);
    log_prefactor.exp() * continued_fraction(a, b, x) / a
}

/// The continued fraction of `I_x(a, b)` (Numerical Recipes' `betacf`), to relative precision ε.
fn continued_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let guard = |v: f64| if v.abs() < TINY { TINY } else { v };
    let (sum, plus, minus) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 / guard(1.0 - sum * x / plus);
    let mut h = d;
    for m in 1..1_000_000 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        let even = m * (b - m) * x / ((minus + m2) * (a + m2));
        d = 1.0 / guard(1.0 + even * d);
        c = guard(1.0 + even / c);
        h *= d * c;
        let odd = -(a + m) * (sum + m) * x / ((a + m2) * (plus + m2));
        d = 1.0 / guard(1.0 + odd * d);
        c = guard(1.0 + odd / c);
        let step = d * c;
        h *= step;
        if (step - 1.0).abs() <= f64::EPSILON {
            break;
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stirling_remainder_matches_mpmath() {
        // mpmath, 30 digits: loggamma(z) - ((z - 0.5) log z - z + 0.5 log 2π). What matters is the
        // absolute error, which becomes the relative error of a density.
        let cases = [
            (0.5, 0.153_426_409_720_027_35),
            (3.0, 0.027_677_925_684_998_34),
            (9.99, 0.008_338_896_797_734_33),
            (10.0, 0.008_330_563_433_362_87),
            (50.0, 0.001_666_644_446_983_365_5),
            (1e6, 8.333_333_333_333_056e-8),
        ];
        for (z, expected) in cases {
            let got = stirling_remainder(z);
            // Below 10 through statrs' ln Γ (its rounding), above through the series.
            let tolerance = if z < 10.0 { 2e-14 } else { 1e-16 };
            assert!(
                (got - expected).abs() <= tolerance,
                "δ({z}) = {got}, expected {expected}"
            );
        }
    }

    #[test]
    fn uniform_density_and_cdf() {
        let uniform = BetaDensity::new(1.0, 1.0);
        assert!((uniform.at(0.3) - 1.0).abs() < 1e-15);
        assert!((uniform.at(0.0) - 1.0).abs() < 1e-15 && (uniform.at(1.0) - 1.0).abs() < 1e-15);
        assert_eq!(BetaDensity::new(2.0, 3.0).at(0.0), 0.0);
        assert_eq!(BetaDensity::new(0.5, 3.0).at(0.0), f64::INFINITY);
        assert!((beta_regularized(1.0, 1.0, 0.3, 0.7) - 0.3).abs() < 1e-15);
    }
}
