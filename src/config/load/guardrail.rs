//! The checks of an optimization's `guardrails:` (docs/design.md §3.21).

use std::collections::BTreeMap;

use serde_saphyr::{Location, Spanned};

use super::Checker;
use crate::config::definition::{Guardrail, Metric, Probability};
use crate::config::raw::{RawGuardrail, RawTolerance};
use crate::model::{Better, Harm, Tolerance};

/// The confidence of a guardrail that does not set one.
const CONFIDENCE: f64 = 0.95;

impl Checker {
    /// The guardrails of the optimization at `path` whose reward is `reward`.
    pub(super) fn guardrails(
        &mut self,
        path: &str,
        raw: &[Spanned<RawGuardrail>],
        metrics: &BTreeMap<String, Metric>,
        reward: Option<&str>,
    ) -> Vec<Guardrail> {
        let mut guardrails: Vec<Guardrail> = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        for (i, entry) in raw.iter().enumerate() {
            let path = format!("{path}.guardrails[{i}]");
            self.locate(&path, &entry.referenced);
            let metric = entry.value.metric.as_ref();
            let name = metric.map(|m| m.value.as_str());
            let at = metric.map(|m| &m.referenced);
            let problem = if name.is_some() && name == reward {
                Some((
                    format!("`{}` is the reward of this optimization", name.unwrap_or_default()),
                    "a guardrail is another metric that must not get worse; the reward is already optimized",
                ))
            } else if name.is_some_and(|n| seen.contains(&n)) {
                Some((
                    format!("`{}` is a guardrail twice", name.unwrap_or_default()),
                    "list each metric once",
                ))
            } else {
                None
            };
            seen.extend(name);
            let guardrail = self.guardrail(&path, entry, metrics);
            match problem {
                Some((message, hint)) => {
                    self.report(&format!("{path}.metric"), at, message, Some(hint))
                }
                None => guardrails.extend(guardrail),
            }
        }
        guardrails
    }

    fn guardrail(
        &mut self,
        path: &str,
        raw: &Spanned<RawGuardrail>,
        metrics: &BTreeMap<String, Metric>,
    ) -> Option<Guardrail> {
        let at = &raw.referenced;
        let g = &raw.value;
        let metric = self
            .required(path, Some(at), "metric", &g.metric)
            .and_then(|m| self.known_metric(&format!("{path}.metric"), m, metrics));
        let better = self
            .required(path, Some(at), "better", &g.better)
            .and_then(|b| self.better(&format!("{path}.better"), b));
        let tolerance = match &g.tolerance {
            None => Some(Tolerance::Relative(0.0)),
            Some(t) => self.tolerance(&format!("{path}.tolerance"), t),
        };
        let confidence = match &g.confidence {
            None => Probability::new(CONFIDENCE),
            Some(c) => self.confidence(&format!("{path}.confidence"), &c.referenced, c.value),
        };
        Some(Guardrail {
            metric: metric?,
            harm: Harm {
                better: better?,
                tolerance: tolerance?,
            },
            confidence: confidence?,
        })
    }

    /// The metric named `raw`, or a report naming the known ones.
    pub(super) fn known_metric(
        &mut self,
        path: &str,
        raw: &Spanned<String>,
        metrics: &BTreeMap<String, Metric>,
    ) -> Option<Metric> {
        self.locate(path, &raw.referenced);
        if let Some(metric) = metrics.get(&raw.value) {
            return Some(metric.clone());
        }
        let known: Vec<&str> = metrics.keys().map(String::as_str).collect();
        self.report(
            path,
            Some(&raw.referenced),
            format!("metric `{}` does not exist", raw.value),
            Some(&format!(
                "define it under `metrics:`; known metrics: {}",
                known.join(", ")
            )),
        );
        None
    }

    fn better(&mut self, path: &str, raw: &Spanned<String>) -> Option<Better> {
        match raw.value.as_str() {
            "higher" => Some(Better::Higher),
            "lower" => Some(Better::Lower),
            other => {
                self.report(
                    path,
                    Some(&raw.referenced),
                    format!("unknown direction `{other}`"),
                    Some("better: higher (more is better, e.g. sign-ups) or better: lower (e.g. refunds)"),
                );
                None
            }
        }
    }

    fn tolerance(&mut self, path: &str, raw: &Spanned<RawTolerance>) -> Option<Tolerance> {
        let at = Some(&raw.referenced);
        let hint = "tolerance: {relative: 0.05} (5% of the baseline's value) or {absolute: 0.002} (in the metric's units)";
        let problem = match (raw.value.relative, raw.value.absolute) {
            (Some(share), None) if (0.0..1.0).contains(&share) => {
                return Some(Tolerance::Relative(share))
            }
            (None, Some(difference)) if difference >= 0.0 && difference.is_finite() => {
                return Some(Tolerance::Absolute(difference))
            }
            (Some(share), None) => format!("relative {share} is not in [0, 1)"),
            (None, Some(difference)) => format!("absolute {difference} is not a number ≥ 0"),
            (Some(_), Some(_)) => "has both `relative` and `absolute`".into(),
            (None, None) => "has neither `relative` nor `absolute`".into(),
        };
        self.report(path, at, problem, Some(hint));
        None
    }

    fn confidence(&mut self, path: &str, at: &Location, value: f64) -> Option<Probability> {
        if value > 0.5 && value < 1.0 {
            return Probability::new(value);
        }
        self.report(
            path,
            Some(at),
            format!("{value} is not in (0.5, 1)"),
            Some("e.g. confidence: 0.95 (an arm is harmful when P(harm) is at least this)"),
        );
        None
    }
}
