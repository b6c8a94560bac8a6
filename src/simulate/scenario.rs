//! A simulation scenario: an optimization definition, the true behaviour of visitors, traffic,
//! delays, drift, a horizon and repetitions. Raw YAML → checked `Scenario` in one place.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use statrs::distribution::{Continuous, ContinuousCDF, Normal};

use crate::time::Span;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    seed: Option<u64>,
    start: Option<String>,
    horizon: String,
    repetitions: Option<u32>,
    visitors_per_hour: u32,
    policies: Option<Vec<String>>,
    delay: Option<RawDelay>,
    metric: Option<String>,
    optimization: serde_json::Value,
    arms: Vec<RawArm>,
    #[serde(default)]
    contexts: Vec<RawContext>,
    #[serde(default)]
    drift: Vec<RawDrift>,
    cycle: Option<RawCycle>,
    /// Entries of the optimization's `guardrails:` (bool metrics), as in a definitions file.
    #[serde(default)]
    guardrails: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCycle {
    daily: Option<Vec<f64>>,
    weekly: Option<Vec<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDelay {
    max: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArm {
    variant: BTreeMap<String, String>,
    rate: f64,
    value: Option<RawValue>,
    /// This arm's own cycle, on top of the scenario's (only under the scenario's `arms:`).
    cycle: Option<RawCycle>,
    /// The true rate of each guardrail metric, by name (only under the scenario's `arms:`).
    guardrails: Option<BTreeMap<String, f64>>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawValue {
    mean: f64,
    sd: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContext {
    context: BTreeMap<String, String>,
    share: f64,
    #[serde(default)]
    arms: Vec<RawArm>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDrift {
    at: String,
    arms: Vec<RawArm>,
    #[serde(default)]
    context: Option<BTreeMap<String, String>>,
}

/// Multipliers of every arm's conversion rate by the hour of the day (UTC, 24 values from 00:00)
/// and the day of the week (7 values from Monday): traffic that converts better at some times.
#[derive(Debug, Clone, PartialEq)]
pub struct Cycle {
    pub daily: Vec<f64>,
    pub weekly: Vec<f64>,
}

impl Cycle {
    fn check(raw: &RawCycle) -> anyhow::Result<Cycle> {
        let profile = |values: &Option<Vec<f64>>, len: usize, key: &str| match values {
            None => Ok(vec![1.0; len]),
            Some(v) if v.len() != len => {
                bail!(
                    "cycle.{key}: {len} multipliers, one per {}; found {}",
                    if len == 24 {
                        "hour from 00:00 UTC"
                    } else {
                        "day from Monday"
                    },
                    v.len()
                )
            }
            Some(v) if v.iter().any(|m| !m.is_finite() || *m < 0.0) => {
                bail!("cycle.{key}: every multiplier must be a number ≥ 0")
            }
            Some(v) => Ok(v.clone()),
        };
        Ok(Cycle {
            daily: profile(&raw.daily, 24, "daily")?,
            weekly: profile(&raw.weekly, 7, "weekly")?,
        })
    }

    /// The multiplier at instant `t`.
    pub fn at(&self, t: DateTime<Utc>) -> f64 {
        use chrono::{Datelike, Timelike};
        self.daily[t.hour() as usize] * self.weekly[t.weekday().num_days_from_monday() as usize]
    }

    fn largest(&self) -> f64 {
        let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        max(&self.daily) * max(&self.weekly)
    }
}

/// Which policy serves the simulated visitors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// The scenario's optimization, as defined.
    Bandit,
    /// The same bandit without holdout, drop rule and generation.
    Plain,
    /// An equal split that never learns (an A/B test).
    Uniform,
    /// The scenario's optimization without its guardrails: what they cost and what they spare.
    Unguarded,
}

impl Policy {
    pub fn name(self) -> &'static str {
        match self {
            Policy::Bandit => "bandit",
            Policy::Plain => "plain",
            Policy::Uniform => "uniform",
            Policy::Unguarded => "unguarded",
        }
    }
}

/// The true reward of one arm: conversion probability and, for numeric metrics, the value of a
/// conversion (Normal, truncated at 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Truth {
    pub rate: f64,
    pub value_mean: f64,
    pub value_sd: f64,
}

impl Truth {
    /// The expected reward of one unit: the rate times the mean of the value, a Normal(μ, σ)
    /// truncated at 0 as drawn (E[max(0, X)] = μ Φ(μ/σ) + σ φ(μ/σ)).
    pub fn expected(&self) -> f64 {
        let (mu, sigma) = (self.value_mean, self.value_sd);
        if sigma <= 0.0 {
            return self.rate * mu.max(0.0);
        }
        let z = mu / sigma;
        let standard = Normal::standard();
        self.rate * (mu * standard.cdf(z) + sigma * standard.pdf(z))
    }
}

/// A change of the truth at a time after the start.
#[derive(Debug, Clone)]
pub struct Drift {
    /// After the scenario's start.
    pub at: Span,
    /// `None`: every context.
    pub context: Option<BTreeMap<String, String>>,
    pub arms: Vec<(BTreeMap<String, String>, Truth)>,
}

#[derive(Debug, Clone)]
pub struct VisitorContext {
    pub values: BTreeMap<String, String>,
    pub share: f64,
    pub arms: Vec<(BTreeMap<String, String>, Truth)>,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub seed: u64,
    pub start: DateTime<Utc>,
    pub hours: u32,
    pub repetitions: u32,
    pub visitors_per_hour: u32,
    pub policies: Vec<Policy>,
    pub delay_max: Span,
    pub numeric: bool,
    /// The `optimizations.<name>` mapping of a definitions file, without status/reward/exposures.
    pub optimization: serde_json::Value,
    pub arms: Vec<(BTreeMap<String, String>, Truth)>,
    pub contexts: Vec<VisitorContext>,
    pub drift: Vec<Drift>,
    pub cycle: Option<Cycle>,
    /// Arms with a cycle of their own (`arms[i].cycle`).
    pub arm_cycles: Vec<(BTreeMap<String, String>, Cycle)>,
    /// The `guardrails:` entries and their metric names, in order.
    pub guardrails: Vec<(String, serde_json::Value)>,
    /// Per arm, the true rate of each guardrail metric, in `guardrails` order.
    pub guardrail_rates: Vec<(BTreeMap<String, String>, Vec<f64>)>,
    /// The arms whose true guardrail rates harm against the baseline's beyond the tolerance.
    pub harmful: Vec<BTreeMap<String, String>>,
}

/// Refuses a cycle that takes any true rate above 1 at its largest multipliers.
fn check_cycled_rates(
    rates: &[&(BTreeMap<String, String>, Truth)],
    cycle: Option<&Cycle>,
    arm_cycles: &[(BTreeMap<String, String>, Cycle)],
) -> anyhow::Result<()> {
    for (variant, truth) in rates {
        let own = arm_cycles.iter().find(|(v, _)| v == variant);
        let largest = cycle.map_or(1.0, Cycle::largest) * own.map_or(1.0, |(_, c)| c.largest());
        if truth.rate * largest > 1.0 {
            bail!(
                "cycle: the largest multiplier ({largest}) takes the rate {} of {variant:?} above 1",
                truth.rate
            );
        }
    }
    Ok(())
}

/// The arms of `arms:` with a cycle of their own; a cycle under `contexts:` or `drift:` is refused.
fn arm_cycles(raw: &RawScenario) -> anyhow::Result<Vec<(BTreeMap<String, String>, Cycle)>> {
    let nested = raw.contexts.iter().flat_map(|c| &c.arms);
    if nested
        .chain(raw.drift.iter().flat_map(|d| &d.arms))
        .any(|a| a.cycle.is_some())
    {
        bail!("cycle: an arm's own cycle belongs under the scenario's arms:, not under contexts: or drift:");
    }
    raw.arms
        .iter()
        .enumerate()
        .filter_map(|(i, a)| a.cycle.as_ref().map(|c| (i, a, c)))
        .map(|(i, a, c)| {
            let cycle = Cycle::check(c).with_context(|| format!("arms[{i}]"))?;
            Ok((a.variant.clone(), cycle))
        })
        .collect()
}

/// The guardrail entries with their metric names, and every arm's true guardrail rates; rates
/// under `contexts:` or `drift:` are refused.
#[allow(clippy::type_complexity)]
fn guardrail_truths(
    raw: &RawScenario,
) -> anyhow::Result<(
    Vec<(String, serde_json::Value)>,
    Vec<(BTreeMap<String, String>, Vec<f64>)>,
)> {
    if raw.optimization.get("guardrails").is_some() {
        bail!("optimization.guardrails: in a scenario, guardrails: is a top-level key (beside arms:, whose entries give each guardrail's true rate)");
    }
    let nested = raw.contexts.iter().flat_map(|c| &c.arms);
    if nested
        .chain(raw.drift.iter().flat_map(|d| &d.arms))
        .any(|a| a.guardrails.is_some())
    {
        bail!("guardrails: an arm's guardrail rates belong under the scenario's arms:, not under contexts: or drift:");
    }
    let guardrails = raw
        .guardrails
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let name = entry
                .get("metric")
                .and_then(|m| m.as_str())
                .unwrap_or_default();
            if let Some(problem) = crate::config::name_problem(name) {
                bail!("guardrails[{i}].metric: {problem}");
            }
            Ok((name.to_string(), entry.clone()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let rates = raw
        .arms
        .iter()
        .enumerate()
        .map(|(i, arm)| {
            let given = arm.guardrails.clone().unwrap_or_default();
            if let Some(unknown) = given.keys().find(|k| !guardrails.iter().any(|g| &g.0 == *k)) {
                let known: Vec<&str> = guardrails.iter().map(|g| g.0.as_str()).collect();
                bail!(
                    "arms[{i}].guardrails: `{unknown}` is not the metric of an entry of the scenario's guardrails (they are: {})",
                    known.join(", ")
                );
            }
            let rates = guardrails
                .iter()
                .map(|(name, _)| match given.get(name) {
                    Some(rate) if (0.0..=1.0).contains(rate) => Ok(*rate),
                    Some(rate) => bail!("arms[{i}].guardrails.{name}: rate {rate} is not in [0, 1]"),
                    None => bail!("arms[{i}].guardrails: give the true rate of `{name}`"),
                })
                .collect::<anyhow::Result<Vec<f64>>>()?;
            Ok((arm.variant.clone(), rates))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((guardrails, rates))
}

/// The policies of `policies:` (bandit, plain and uniform without it).
fn policies(raw: &RawScenario) -> anyhow::Result<Vec<Policy>> {
    let Some(names) = &raw.policies else {
        return Ok(vec![Policy::Bandit, Policy::Plain, Policy::Uniform]);
    };
    names
        .iter()
        .map(|n| match n.as_str() {
            "bandit" => Ok(Policy::Bandit),
            "plain" => Ok(Policy::Plain),
            "uniform" => Ok(Policy::Uniform),
            "unguarded" if !raw.guardrails.is_empty() => Ok(Policy::Unguarded),
            "unguarded" => Err(anyhow!(
                "policy `unguarded`: the scenario has no guardrails"
            )),
            other => Err(anyhow!(
                "policy `{other}`: use bandit, plain, uniform or (with guardrails) unguarded"
            )),
        })
        .collect()
}

/// The truths of `arms`, arm `i` named `what(i)` in messages.
fn truths(
    arms: &[RawArm],
    numeric: bool,
    what: impl Fn(usize) -> String,
) -> anyhow::Result<Vec<(BTreeMap<String, String>, Truth)>> {
    arms.iter()
        .enumerate()
        .map(|(i, a)| Ok((a.variant.clone(), truth(a, numeric, &what(i))?)))
        .collect()
}

/// The visitor contexts with their own truths, and the drifts.
fn contexts_and_drift(
    raw: &RawScenario,
    numeric: bool,
) -> anyhow::Result<(Vec<VisitorContext>, Vec<Drift>)> {
    let contexts = raw
        .contexts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if c.share <= 0.0 {
                bail!("contexts[{i}].share must be positive");
            }
            Ok(VisitorContext {
                values: c.context.clone(),
                share: c.share,
                arms: truths(&c.arms, numeric, |_| format!("contexts[{i}]"))?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let drift = raw
        .drift
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let at = Span::parse(&d.at).map_err(|e| anyhow!("drift[{i}].at: {e}"))?;
            Ok(Drift {
                at,
                context: d.context.clone(),
                arms: truths(&d.arms, numeric, |_| format!("drift[{i}]"))?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((contexts, drift))
}

fn truth(arm: &RawArm, numeric: bool, what: &str) -> anyhow::Result<Truth> {
    if !(0.0..=1.0).contains(&arm.rate) {
        bail!("{what}: rate {} is not in [0, 1]", arm.rate);
    }
    let value = match (numeric, arm.value) {
        (true, Some(v)) if v.sd >= 0.0 => v,
        (true, _) => bail!("{what}: a numeric metric needs value: {{mean, sd}} with sd ≥ 0"),
        (false, None) => RawValue { mean: 1.0, sd: 0.0 },
        (false, Some(_)) => bail!("{what}: `value` belongs to metric: numeric"),
    };
    Ok(Truth {
        rate: arm.rate,
        value_mean: value.mean,
        value_sd: value.sd,
    })
}

impl Scenario {
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the scenario {}", path.display()))?;
        let raw: RawScenario =
            serde_saphyr::from_str(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        Scenario::check(raw).with_context(|| format!("scenario {}", path.display()))
    }

    fn check(raw: RawScenario) -> anyhow::Result<Scenario> {
        let numeric = match raw.metric.as_deref().unwrap_or("bool") {
            "bool" => false,
            "numeric" => true,
            other => bail!("metric `{other}`: use bool or numeric"),
        };
        let horizon = Span::parse(&raw.horizon).map_err(|e| anyhow!("horizon: {e}"))?;
        let hours = u32::try_from(horizon.micros() / 3_600_000_000).unwrap_or(0);
        if hours == 0 || horizon.micros() % 3_600_000_000 != 0 {
            bail!("horizon: a whole number of hours, at least 1h");
        }
        let start = match &raw.start {
            Some(text) => text
                .parse()
                .map_err(|e| anyhow!("start `{text}`: {e} (RFC 3339)"))?,
            None => "2026-03-01T00:00:00Z"
                .parse()
                .expect("a valid default start"),
        };
        let delay_max = match &raw.delay {
            Some(d) => Span::parse(&d.max).map_err(|e| anyhow!("delay.max: {e}"))?,
            None => Span::from_seconds(3_600),
        };
        let policies = policies(&raw)?;
        let arms = truths(&raw.arms, numeric, |i| format!("arms[{i}]"))?;
        if arms.len() < 2 {
            bail!("arms: give the true rate of every arm (at least 2)");
        }
        let (contexts, drift) = contexts_and_drift(&raw, numeric)?;
        if !raw.optimization.is_object() {
            bail!("optimization: a mapping, as under `optimizations.<name>` in a definitions file");
        }
        if raw.repetitions == Some(0) {
            bail!("repetitions: at least 1");
        }
        let cycle = raw.cycle.as_ref().map(Cycle::check).transpose()?;
        let arm_cycles = arm_cycles(&raw)?;
        let rates = arms.iter().chain(contexts.iter().flat_map(|c| &c.arms));
        let rates: Vec<_> = rates.chain(drift.iter().flat_map(|d| &d.arms)).collect();
        check_cycled_rates(&rates, cycle.as_ref(), &arm_cycles)?;
        let (guardrails, guardrail_rates) = guardrail_truths(&raw)?;
        let scenario = Scenario {
            name: raw.name,
            seed: raw.seed.unwrap_or(1),
            start,
            hours,
            repetitions: raw.repetitions.unwrap_or(5),
            visitors_per_hour: raw.visitors_per_hour,
            policies,
            delay_max,
            numeric,
            optimization: raw.optimization,
            arms,
            contexts,
            drift,
            cycle,
            arm_cycles,
            guardrails,
            guardrail_rates,
            harmful: Vec::new(),
        };
        let harmful = scenario.harmful_arms()?;
        Ok(Scenario {
            harmful,
            ..scenario
        })
    }

    /// The truth of `variant` for a visitor in `context` at `elapsed` after the start, the cycle's
    /// multiplier applied to its rate.
    pub fn truth(
        &self,
        variant: &BTreeMap<String, String>,
        context: &BTreeMap<String, String>,
        elapsed: Span,
    ) -> Option<Truth> {
        let mut found = self.arms.iter().find(|(v, _)| v == variant).map(|a| a.1);
        if let Some(c) = self.contexts.iter().find(|c| &c.values == context) {
            if let Some((_, t)) = c.arms.iter().find(|(v, _)| v == variant) {
                found = Some(*t);
            }
        }
        for d in self.drift.iter().filter(|d| d.at <= elapsed) {
            if d.context.as_ref().is_none_or(|c| c == context) {
                if let Some((_, t)) = d.arms.iter().find(|(v, _)| v == variant) {
                    found = Some(*t);
                }
            }
        }
        let at = self.start + elapsed.as_chrono();
        let own = self.arm_cycles.iter().find(|(v, _)| v == variant);
        let multiplier =
            self.cycle.as_ref().map_or(1.0, |c| c.at(at)) * own.map_or(1.0, |(_, c)| c.at(at));
        found.map(|t| Truth {
            rate: t.rate * multiplier,
            ..t
        })
    }

    /// The true guardrail rates of `variant`, in `guardrails` order (none without guardrails).
    pub fn guardrail_rates(&self, variant: &BTreeMap<String, String>) -> &[f64] {
        self.guardrail_rates
            .iter()
            .find(|(v, _)| v == variant)
            .map_or(&[], |(_, rates)| rates.as_slice())
    }

    /// The arms whose true rate on some guardrail harms against the baseline's (the definition's
    /// first arm) by more than the guardrail's tolerance, as the definitions read them.
    fn harmful_arms(&self) -> anyhow::Result<Vec<BTreeMap<String, String>>> {
        if self.guardrails.is_empty() {
            return Ok(Vec::new());
        }
        let text = self.definitions(Policy::Bandit);
        let config = crate::config::parse(Path::new("levered.yaml"), &text)
            .map_err(|e| anyhow!("the scenario's optimization: {e}"))?;
        let optimization = &config.optimizations["sim"];
        let factors: Vec<&String> = optimization.factors.iter().map(|f| &f.name).collect();
        let baseline: BTreeMap<String, String> = optimization.variants[0]
            .0
            .iter()
            .zip(&factors)
            .map(|(level, factor)| (factor.to_string(), level.clone()))
            .collect();
        let base = self.guardrail_rates(&baseline).to_vec();
        Ok(self
            .guardrail_rates
            .iter()
            .filter(|(variant, rates)| {
                optimization
                    .guardrails
                    .iter()
                    .zip(rates.iter().zip(&base))
                    .any(|(g, (arm, base))| *variant != baseline && g.harm.harms(*arm, *base))
            })
            .map(|(variant, _)| variant.clone())
            .collect())
    }

    /// The definitions file the real pipeline trains on, for `policy`.
    pub fn definitions(&self, policy: Policy) -> String {
        let mut optimization = self.optimization.clone();
        let guarded = !self.guardrails.is_empty() && policy != Policy::Unguarded;
        if let Some(o) = optimization.as_object_mut() {
            if guarded {
                let entries = self.guardrails.iter().map(|g| g.1.clone()).collect();
                o.insert("guardrails".into(), serde_json::Value::Array(entries));
            }
            o.insert("status".into(), "live".into());
            o.insert("reward".into(), "reward".into());
            o.insert(
                "exposures".into(),
                serde_json::json!({"table": "exposures"}),
            );
            if policy == Policy::Plain {
                o.remove("generation");
                if let Some(model) = o.get_mut("model").and_then(|m| m.as_object_mut()) {
                    model.remove("holdout");
                    model.remove("drop");
                }
            }
        }
        let kind = if self.numeric { "numeric" } else { "bool" };
        let value = if self.numeric { ", value" } else { "" };
        // Each guardrail's events are the rows of `guardrail_events` with its metric's name.
        let guardrail_metrics: String = self
            .guardrails
            .iter()
            .filter(|_| guarded)
            .map(|(name, _)| format!("  {name}:\n    type: bool\n    sql: \"SELECT anonymous_id, timestamp FROM guardrail_events WHERE metric = '{name}' AND timestamp >= $start AND timestamp < $end\"\n"))
            .collect();
        format!(
            "warehouse: {{path: warehouse.duckdb}}\nstate: state.duckdb\noutput_dir: out\nmetrics:\n  reward:\n    type: {kind}\n    sql: \"SELECT anonymous_id, timestamp{value} FROM rewards WHERE timestamp >= $start AND timestamp < $end\"\n{guardrail_metrics}optimizations:\n  sim: {optimization}\n"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two arms at 10% and 20%; `b` follows B's rate, `rest` the arms.
    fn yaml(b: &str, rest: &str) -> String {
        format!(
            "name: c
horizon: 2d
visitors_per_hour: 10
optimization: {{design_factors: {{h: [A, B]}}, model: {{kind: mab}}}}
arms:
  - {{variant: {{h: A}}, rate: 0.1}}
  - {{variant: {{h: B}}, rate: 0.2{b}}}
{rest}"
        )
    }

    fn checked(yaml: &str) -> anyhow::Result<Scenario> {
        Scenario::check(serde_saphyr::from_str(yaml).unwrap())
    }

    fn scenario(cycle: &str) -> anyhow::Result<Scenario> {
        checked(&yaml("", cycle))
    }

    fn daily(peak_hour: usize, peak: &str) -> String {
        let values: Vec<&str> = (0..24)
            .map(|h| if h == peak_hour { peak } else { "1" })
            .collect();
        values.join(", ")
    }

    #[test]
    fn a_cycle_multiplies_every_rate_by_the_hour_and_the_weekday() {
        let cycle = format!(
            "cycle: {{daily: [{}], weekly: [1, 1, 1, 1, 1, 1, 0.5]}}",
            daily(9, "3")
        );
        let s = scenario(&cycle).unwrap();
        let b = BTreeMap::from([("h".to_string(), "B".to_string())]);
        let rate = |hours: i64| {
            let elapsed = Span::from_seconds(hours * 3_600);
            s.truth(&b, &BTreeMap::new(), elapsed).unwrap().rate
        };
        // The default start, 2026-03-01T00:00:00Z, is a Sunday (weekly multiplier 0.5).
        assert!((rate(8) - 0.1).abs() < 1e-15);
        assert!((rate(9) - 0.3).abs() < 1e-15);
        // Monday 09:00 and 10:00.
        assert!((rate(33) - 0.6).abs() < 1e-15);
        assert!((rate(34) - 0.2).abs() < 1e-15);
    }

    #[test]
    fn an_arms_own_cycle_changes_only_that_arm() {
        let s = scenario("").unwrap();
        assert!(s.cycle.is_none() && s.arm_cycles.is_empty());
        let yaml = yaml(&format!(", cycle: {{daily: [{}]}}", daily(2, "2")), "");
        let s = checked(&yaml).unwrap();
        let rate = |arm: &str, hours: i64| {
            let variant = BTreeMap::from([("h".to_string(), arm.to_string())]);
            let elapsed = Span::from_seconds(hours * 3_600);
            s.truth(&variant, &BTreeMap::new(), elapsed).unwrap().rate
        };
        assert_eq!((rate("A", 2), rate("B", 2), rate("B", 3)), (0.1, 0.4, 0.2));
        let nested = yaml.replace(
            "arms:\n",
            "contexts:\n  - {context: {c: x}, share: 1, arms: [{variant: {h: A}, rate: 0.1, cycle: {}}]}\narms:\n",
        );
        let error = checked(&nested).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("belongs under the scenario's arms"),
            "{error}"
        );
    }

    #[test]
    fn a_cycle_of_the_wrong_length_or_above_rate_one_is_refused() {
        let short = scenario("cycle: {daily: [1, 2]}").unwrap_err().to_string();
        assert!(short.contains("24 multipliers"), "{short}");
        let weekly = scenario("cycle: {weekly: [1, 1, 1, 1, 1, 1, -1]}")
            .unwrap_err()
            .to_string();
        assert!(weekly.contains("≥ 0"), "{weekly}");
        let high = format!("cycle: {{daily: [{}]}}", daily(3, "6"));
        let high = scenario(&high).unwrap_err().to_string();
        assert!(high.contains("above 1"), "{high}");
    }
}
