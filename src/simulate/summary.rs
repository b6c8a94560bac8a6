//! Traces of every repetition → means and spreads per policy: CSV files and a table.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::run::Trace;
use super::scenario::Policy;

/// One policy over all repetitions.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PolicySummary {
    pub policy: Policy,
    pub repetitions: usize,
    /// Mean and standard deviation over repetitions of the final cumulative regret.
    pub regret_mean: f64,
    pub regret_sd: f64,
    /// Slopes of the mean cumulative regret over the second half of the horizon: against ln(hours)
    /// (settles for a logarithmic regret) and per hour (stays positive for a linear one).
    pub regret_per_ln_hour: f64,
    pub regret_per_hour: f64,
    /// Share of the last 24 hours' visitors served their context's best arm (mean over repetitions).
    pub best_share_last_day: f64,
    /// Mean final pooled weight per variant.
    pub final_weights: BTreeMap<String, f64>,
    /// Lift over the holdout: mean estimate, mean truth, mean error and its standard error.
    pub lift_estimate: Option<f64>,
    pub lift_true: Option<f64>,
    pub lift_error: Option<f64>,
    pub lift_error_se: Option<f64>,
    /// With guardrails: the share of visitors served a truly harmful arm (mean and standard
    /// deviation over repetitions), and the largest final pooled weight of those arms in any
    /// repetition.
    pub harm_served: Option<f64>,
    pub harm_served_sd: Option<f64>,
    pub harmful_weight_max: Option<f64>,
}

fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let sd = if values.len() > 1 {
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (mean, sd)
}

/// Least-squares slope of `ys` against `xs`.
fn slope(xs: &[f64], ys: &[f64]) -> f64 {
    let (mx, _) = mean_sd(xs);
    let (my, _) = mean_sd(ys);
    let sxy: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    if sxx > 0.0 {
        sxy / sxx
    } else {
        0.0
    }
}

/// Mean and standard deviation per hour of a per-hour series, over the traces.
pub(super) fn per_hour(traces: &[&Trace], series: impl Fn(&Trace) -> &Vec<f64>) -> Vec<(f64, f64)> {
    let hours = traces.first().map_or(0, |t| series(t).len());
    (0..hours)
        .map(|h| mean_sd(&traces.iter().map(|t| series(t)[h]).collect::<Vec<_>>()))
        .collect()
}

pub fn summarize(traces: &[Trace]) -> Vec<PolicySummary> {
    let mut by_policy: BTreeMap<Policy, Vec<&Trace>> = BTreeMap::new();
    for t in traces {
        by_policy.entry(t.policy).or_default().push(t);
    }
    by_policy
        .into_iter()
        .map(|(policy, traces)| {
            let finals: Vec<f64> = traces
                .iter()
                .map(|t| *t.regret.last().unwrap_or(&0.0))
                .collect();
            let (regret_mean, regret_sd) = mean_sd(&finals);
            let curve: Vec<f64> = per_hour(&traces, |t| &t.regret)
                .iter()
                .map(|m| m.0)
                .collect();
            let half = curve.len() / 2;
            let hours: Vec<f64> = (half..curve.len()).map(|h| (h + 1) as f64).collect();
            let ln: Vec<f64> = hours.iter().map(|h| h.ln()).collect();
            let tail = &curve[half..];
            let day = curve.len().min(24);
            let best_share_last_day = mean_sd(
                &traces
                    .iter()
                    .map(|t| {
                        t.best_share[t.best_share.len() - day..].iter().sum::<f64>() / day as f64
                    })
                    .collect::<Vec<_>>(),
            )
            .0;
            let mut final_weights: BTreeMap<String, f64> = BTreeMap::new();
            for t in &traces {
                for (variant, w) in &t.final_weights {
                    *final_weights.entry(variant.clone()).or_default() += w / traces.len() as f64;
                }
            }
            let lifts: Vec<(f64, f64)> = traces.iter().filter_map(|t| t.lift).collect();
            let (lift_estimate, lift_true, lift_error, lift_error_se) = if lifts.is_empty() {
                (None, None, None, None)
            } else {
                let errors: Vec<f64> = lifts.iter().map(|(e, t)| e - t).collect();
                let (error, sd) = mean_sd(&errors);
                (
                    Some(mean_sd(&lifts.iter().map(|l| l.0).collect::<Vec<_>>()).0),
                    Some(mean_sd(&lifts.iter().map(|l| l.1).collect::<Vec<_>>()).0),
                    Some(error),
                    Some(sd / (errors.len() as f64).sqrt()),
                )
            };
            let harms: Vec<(f64, f64)> = traces.iter().filter_map(|t| t.harm).collect();
            let (harm_served, harm_served_sd) = if harms.is_empty() {
                (None, None)
            } else {
                let (mean, sd) = mean_sd(&harms.iter().map(|h| h.0).collect::<Vec<_>>());
                (Some(mean), Some(sd))
            };
            let harmful_weight_max = harms.iter().map(|h| h.1).reduce(f64::max);
            PolicySummary {
                policy,
                repetitions: traces.len(),
                regret_mean,
                regret_sd,
                regret_per_ln_hour: slope(&ln, tail),
                regret_per_hour: slope(&hours, tail),
                best_share_last_day,
                final_weights,
                lift_estimate,
                lift_true,
                lift_error,
                lift_error_se,
                harm_served,
                harm_served_sd,
                harmful_weight_max,
            }
        })
        .collect()
}

fn opt(x: Option<f64>) -> String {
    x.map_or_else(String::new, crate::report::number)
}

/// `hourly.csv`: per policy and hour, the mean and standard deviation over repetitions.
pub fn hourly_csv(traces: &[Trace]) -> String {
    let mut by_policy: BTreeMap<Policy, Vec<&Trace>> = BTreeMap::new();
    for t in traces {
        by_policy.entry(t.policy).or_default().push(t);
    }
    let mut out = String::from("policy,hour,regret_mean,regret_sd,best_share_mean,best_share_sd\n");
    for (policy, traces) in by_policy {
        let regret = per_hour(&traces, |t| &t.regret);
        let best = per_hour(&traces, |t| &t.best_share);
        for (h, (r, b)) in regret.iter().zip(&best).enumerate() {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{}",
                policy.name(),
                h + 1,
                crate::report::number(r.0),
                crate::report::number(r.1),
                crate::report::number(b.0),
                crate::report::number(b.1)
            );
        }
    }
    out
}

/// `summary.csv`: one line per policy.
pub fn summary_csv(summaries: &[PolicySummary]) -> String {
    let mut out = String::from(
        "policy,repetitions,regret_mean,regret_sd,regret_per_ln_hour,regret_per_hour,best_share_last_day,lift_estimate,lift_true,lift_error,lift_error_se,final_weights,harm_served,harm_served_sd,harmful_weight_max\n",
    );
    for s in summaries {
        let weights = serde_json::to_string(&s.final_weights).unwrap_or_default();
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},\"{}\",{},{},{}",
            s.policy.name(),
            s.repetitions,
            crate::report::number(s.regret_mean),
            crate::report::number(s.regret_sd),
            crate::report::number(s.regret_per_ln_hour),
            crate::report::number(s.regret_per_hour),
            crate::report::number(s.best_share_last_day),
            opt(s.lift_estimate),
            opt(s.lift_true),
            opt(s.lift_error),
            opt(s.lift_error_se),
            weights.replace('"', "\"\""),
            opt(s.harm_served),
            opt(s.harm_served_sd),
            opt(s.harmful_weight_max)
        );
    }
    out
}

/// An aligned table for the terminal.
pub fn table(name: &str, summaries: &[PolicySummary]) -> String {
    let mut out = format!(
        "{name}\n{:<9} {:>5} {:>14} {:>10} {:>10} {:>10} {:>12}\n",
        "policy", "reps", "regret", "± sd", "per ln h", "per hour", "best share"
    );
    for s in summaries {
        let _ = writeln!(
            out,
            "{:<9} {:>5} {:>14.3} {:>10.3} {:>10.3} {:>10.4} {:>12.4}",
            s.policy.name(),
            s.repetitions,
            s.regret_mean,
            s.regret_sd,
            s.regret_per_ln_hour,
            s.regret_per_hour,
            s.best_share_last_day
        );
        if let (Some(e), Some(t), Some(err), Some(se)) =
            (s.lift_estimate, s.lift_true, s.lift_error, s.lift_error_se)
        {
            let _ = writeln!(
                out,
                "         lift vs holdout: estimate {e:.5}, truth {t:.5}, error {err:+.5} ± {se:.5} (se)"
            );
        }
        if let (Some(harm), Some(sd), Some(weight)) =
            (s.harm_served, s.harm_served_sd, s.harmful_weight_max)
        {
            let _ = writeln!(
                out,
                "         guardrail harm served: {:.2}% ± {:.2}% of visitors on harmful arms; their final weight at most {weight:.4}",
                harm * 100.0,
                sd * 100.0
            );
        }
    }
    out
}
