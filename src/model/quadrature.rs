//! Adaptive Clenshaw–Curtis quadrature on panels, visited left to right.
//!
//! On each panel the integrand is sampled at 25 Chebyshev points; the same samples give the
//! panel's integral, the running integral from the panel's left end to every point (so an integrand
//! can build a CDF from a density while it goes), and an estimate of how well the degree-24
//! interpolant resolves them (the size of its last Chebyshev coefficients). A panel that is not
//! resolved is halved.

use std::sync::OnceLock;

/// Points per panel (Chebyshev points of the second kind, degree 24).
pub const POINTS: usize = 25;
const DEGREE: usize = POINTS - 1;
/// How many of the highest Chebyshev coefficients measure what the interpolant leaves out.
const TAIL: usize = 4;
/// A function whose tail is within this many ulps of its largest sample is resolved to rounding.
const ROUNDING: f64 = 64.0 * f64::EPSILON;

/// The fixed rule on [−1, 1].
struct Rule {
    /// The points, ascending from −1 to 1.
    nodes: [f64; POINTS],
    /// `∫_{−1}^{1}` of the interpolant, as weights on the samples.
    weights: [f64; POINTS],
    /// Row `i`: `∫_{−1}^{node i}` of the interpolant, as weights on the samples.
    running: Vec<[f64; POINTS]>,
    /// Rows for the Chebyshev coefficients `DEGREE − TAIL + 1 ..= DEGREE`.
    tail: Vec<[f64; POINTS]>,
}

fn rule() -> &'static Rule {
    static RULE: OnceLock<Rule> = OnceLock::new();
    RULE.get_or_init(Rule::new)
}

impl Rule {
    fn new() -> Rule {
        let angle = |i: usize| std::f64::consts::PI * (DEGREE - i) as f64 / DEGREE as f64;
        let nodes: [f64; POINTS] = std::array::from_fn(|i| angle(i).cos());
        // c_k = (2/m) Σ'' f_j T_k(x_j), halved again for k = 0 and k = m.
        let coefficient = |k: usize, j: usize| {
            let ends = if j == 0 || j == DEGREE { 0.5 } else { 1.0 };
            let outer = if k == 0 || k == DEGREE { 0.5 } else { 1.0 };
            2.0 / DEGREE as f64 * ends * outer * (k as f64 * angle(j)).cos()
        };
        // ∫_{−1}^{x} T_k, at x = cos θ.
        let antiderivative = |k: usize, theta: f64| -> f64 {
            let t = |k: usize| (k as f64 * theta).cos();
            let at_minus_one = |k: usize| if k.is_multiple_of(2) { 1.0 } else { -1.0 };
            match k {
                0 => t(1) + 1.0,
                1 => 0.25 * (t(2) - 1.0),
                _ => {
                    let (up, down) = ((k + 1) as f64, (k - 1) as f64);
                    0.5 * (t(k + 1) / up - t(k - 1) / down)
                        - 0.5 * (at_minus_one(k + 1) / up - at_minus_one(k - 1) / down)
                }
            }
        };
        let running: Vec<[f64; POINTS]> = (0..POINTS)
            .map(|i| {
                std::array::from_fn(|j| {
                    (0..POINTS)
                        .map(|k| coefficient(k, j) * antiderivative(k, angle(i)))
                        .sum()
                })
            })
            .collect();
        let weights = running[DEGREE];
        let tail = (DEGREE + 1 - TAIL..=DEGREE)
            .map(|k| std::array::from_fn(|j| coefficient(k, j)))
            .collect();
        Rule {
            nodes,
            weights,
            running,
            tail,
        }
    }
}

/// One panel `[low, high]` and its sample points.
pub struct Panel {
    pub low: f64,
    pub high: f64,
    pub points: [f64; POINTS],
}

impl Panel {
    fn new(low: f64, high: f64) -> Panel {
        let (centre, half) = (0.5 * (low + high), 0.5 * (high - low));
        let mut points = rule().nodes.map(|t| centre + half * t);
        points[0] = low;
        points[DEGREE] = high;
        Panel { low, high, points }
    }

    fn half_width(&self) -> f64 {
        0.5 * (self.high - self.low)
    }

    /// The integral over the panel of the function sampled at its points.
    pub fn integral(&self, samples: &[f64]) -> f64 {
        self.half_width() * dot(&rule().weights, samples)
    }

    /// `out[i]` = the integral from the panel's left end to point `i`.
    pub fn running(&self, samples: &[f64], out: &mut [f64]) {
        let half = self.half_width();
        for (o, row) in out.iter_mut().zip(&rule().running) {
            *o = half * dot(row, samples);
        }
    }

    /// What the interpolant may miss of the integral of the sampled function over the panel: the
    /// width times its last Chebyshev coefficients, or 0 when those are rounding noise.
    pub fn unresolved(&self, samples: &[f64]) -> f64 {
        let tail: f64 = rule().tail.iter().map(|row| dot(row, samples).abs()).sum();
        let largest = samples.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        if tail <= ROUNDING * largest {
            0.0
        } else {
            2.0 * self.half_width() * tail
        }
    }
}

fn dot(row: &[f64; POINTS], samples: &[f64]) -> f64 {
    row.iter().zip(samples).map(|(w, v)| w * v).sum()
}

/// A vector-valued integrand evaluated a panel at a time.
pub trait Integrand {
    /// How many components it has.
    fn dims(&self) -> usize;
    /// Fills `samples` (component-major: `POINTS` values per component) on `panel`, and returns
    /// the error the integrand carries beyond its samples' resolution (0 if none).
    fn evaluate(&mut self, panel: &Panel, samples: &mut [f64]) -> f64;
    /// The panel last evaluated was kept; the next one starts at its right end.
    fn accept(&mut self);
}

/// The integral of each component over `[breakpoints[0], breakpoints[last]]`, to an absolute
/// accuracy of about `tolerance`; `None` when a sample is not finite, a panel is still
/// unresolved after 40 halvings, or the panel budget runs out.
pub fn integrate<I: Integrand>(
    integrand: &mut I,
    breakpoints: &[f64],
    tolerance: f64,
) -> Option<Vec<f64>> {
    let dims = integrand.dims();
    let span = breakpoints[breakpoints.len() - 1] - breakpoints[0];
    let mut total = vec![0.0; dims];
    let mut samples = vec![0.0; dims * POINTS];
    // Popped from the end: the leftmost panel first, and a halved panel's left half next.
    let mut pending: Vec<(f64, f64, u32)> = breakpoints
        .windows(2)
        .rev()
        .filter(|w| w[1] > w[0])
        .map(|w| (w[0], w[1], 0))
        .collect();
    let mut budget = 20_000usize;
    while let Some((low, high, depth)) = pending.pop() {
        budget = budget.checked_sub(1)?;
        let panel = Panel::new(low, high);
        let mut error = integrand.evaluate(&panel, &mut samples);
        if !error.is_finite() || samples.iter().any(|v| !v.is_finite()) {
            // An unbounded density at a sample point (a Beta with b < 1 at 1): not for this rule.
            return None;
        }
        for component in samples.chunks(POINTS) {
            error = error.max(panel.unresolved(component));
        }
        // A panel's share of the tolerance is its share of the width, but never below a millionth
        // (panels that small gather at a kink at the end of a support, a few dozen at most).
        if error <= tolerance * ((high - low) / span).max(1e-6) {
            for (t, component) in total.iter_mut().zip(samples.chunks(POINTS)) {
                *t += panel.integral(component);
            }
            integrand.accept();
        } else if depth >= 40 {
            return None;
        } else {
            let middle = 0.5 * (low + high);
            pending.push((middle, high, depth + 1));
            pending.push((low, middle, depth + 1));
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// x⁵ and exp(−x²), with the running integral of exp(−x²) checked at the end.
    struct Smooth {
        running_end: f64,
        accepted: f64,
        pending: f64,
    }

    impl Integrand for Smooth {
        fn dims(&self) -> usize {
            2
        }
        fn evaluate(&mut self, panel: &Panel, samples: &mut [f64]) -> f64 {
            for (i, &x) in panel.points.iter().enumerate() {
                samples[i] = x.powi(5);
                samples[POINTS + i] = (-x * x).exp();
            }
            let mut running = [0.0; POINTS];
            panel.running(&samples[POINTS..], &mut running);
            self.pending = running[DEGREE];
            0.0
        }
        fn accept(&mut self) {
            self.accepted += self.pending;
            self.running_end = self.accepted;
        }
    }

    #[test]
    fn integrates_polynomials_and_smooth_functions() {
        let mut smooth = Smooth {
            running_end: 0.0,
            accepted: 0.0,
            pending: 0.0,
        };
        let result = integrate(&mut smooth, &[0.0, 1.0, 3.0], 1e-14).unwrap();
        assert!((result[0] - 3f64.powi(6) / 6.0).abs() < 1e-10);
        // ∫_0^3 exp(-x²) dx = √π/2 · erf(3)
        assert!((result[1] - 0.886_207_348_259_521_2).abs() < 1e-13);
        assert!((smooth.running_end - 0.886_207_348_259_521_2).abs() < 1e-13);
    }

    #[test]
    fn the_rule_integrates_the_running_interpolant_exactly_for_polynomials() {
        let panel = Panel::new(-1.0, 2.0);
        let samples: Vec<f64> = panel.points.iter().map(|x| 3.0 * x * x).collect();
        let mut running = [0.0; POINTS];
        panel.running(&samples, &mut running);
        for (x, r) in panel.points.iter().zip(running) {
            assert!((r - (x.powi(3) + 1.0)).abs() < 1e-13, "{x}: {r}");
        }
        assert_eq!(panel.unresolved(&samples), 0.0);
    }
}
