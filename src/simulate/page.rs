//! The HTML page of a simulation (`levered simulate --html`): the conclusion, the cumulative regret
//! and the best-arm share per policy over time with their spread over repetitions, drift and cycle
//! markers, and the summary table. Every policy keeps its colour from page to page.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::report::chart::{escape, Line, LineChart, XScale, HOUR_MICROS};

use super::run::Trace;
use super::scenario::{Policy, Scenario};
use super::summary::{per_hour, PolicySummary};

fn color(policy: Policy) -> &'static str {
    match policy {
        Policy::Bandit => "#4e79a7",
        Policy::Plain => "#f28e2b",
        Policy::Uniform => "#e15759",
        Policy::Unguarded => "#59a14f",
    }
}

/// Mean ± one standard deviation per hour of `series`, one line per policy.
fn lines(by_policy: &BTreeMap<Policy, Vec<&Trace>>, series: fn(&Trace) -> &Vec<f64>) -> Vec<Line> {
    by_policy
        .iter()
        .map(|(policy, traces)| {
            let curve = per_hour(traces, series);
            let hour = |h: usize| (h + 1) as f64;
            Line {
                name: policy.name().into(),
                color: color(*policy).into(),
                points: curve
                    .iter()
                    .enumerate()
                    .map(|(h, m)| (hour(h), m.0))
                    .collect(),
                band: curve
                    .iter()
                    .enumerate()
                    .map(|(h, m)| (hour(h), m.0 - m.1, m.0 + m.1))
                    .collect(),
                dashed: false,
            }
        })
        .collect()
}

/// A marker at every drift, and at every day (or week) of a cycle when there are at most 14.
fn markers(scenario: &Scenario) -> (Vec<(f64, String)>, String) {
    let mut markers: Vec<(f64, String)> = scenario
        .drift
        .iter()
        .enumerate()
        .map(|(i, d)| {
            (
                d.at.micros() as f64 / HOUR_MICROS,
                format!("drift {}", i + 1),
            )
        })
        .collect();
    let mut notes = Vec::new();
    if !markers.is_empty() {
        notes.push("Dashed lines labelled “drift” mark the changes of the truth.".to_string());
    }
    let cycles: Vec<_> = scenario
        .cycle
        .iter()
        .chain(scenario.arm_cycles.iter().map(|(_, c)| c))
        .collect();
    let weekly = cycles.iter().any(|c| c.weekly.iter().any(|m| *m != 1.0));
    let daily = cycles.iter().any(|c| c.daily.iter().any(|m| *m != 1.0));
    let period = if weekly { 168 } else { 24 };
    let count = scenario.hours / period;
    if (daily || weekly) && (1..=14).contains(&count) {
        markers.extend((1..=count).map(|k| (f64::from(k * period), String::new())));
        notes.push(format!(
            "Unlabelled dashed lines mark the start of every {} of the {} cycle.",
            if weekly { "week" } else { "day" },
            if weekly { "weekly" } else { "daily" }
        ));
    }
    let note = if notes.is_empty() {
        String::new()
    } else {
        format!("<p class=\"note\">{}</p>", notes.join(" "))
    };
    (markers, note)
}

/// The conclusion: each learning policy's regret against the equal split, and its best-arm share.
fn headline(scenario: &Scenario, summaries: &[PolicySummary]) -> String {
    let uniform = summaries.iter().find(|s| s.policy == Policy::Uniform);
    let unit = unit(scenario);
    let mut text = format!(
        "Over {} repetition{} of {} hours with {} visitors per hour:",
        scenario.repetitions,
        if scenario.repetitions == 1 { "" } else { "s" },
        scenario.hours,
        scenario.visitors_per_hour
    );
    for s in summaries {
        let _ = write!(
            text,
            " <b style=\"color:{}\">{}</b> lost {:.1} ± {:.1} {unit} to the best arm",
            color(s.policy),
            s.policy.name(),
            s.regret_mean,
            s.regret_sd
        );
        if let Some(u) = uniform.filter(|u| u.policy != s.policy && u.regret_mean > 0.0) {
            let _ = write!(
                text,
                " ({:.0}% of the equal split's)",
                s.regret_mean / u.regret_mean * 100.0
            );
        }
        let _ = write!(
            text,
            " and served the best arm to {:.1}% of the last day's visitors",
            s.best_share_last_day * 100.0
        );
        if let Some(harm) = s.harm_served {
            let _ = write!(
                text,
                ", a guardrail-harmful arm to {:.1}% of all visitors",
                harm * 100.0
            );
        }
        text.push(';');
    }
    text.pop();
    text.push('.');
    if !scenario.harmful.is_empty() {
        text.push_str(" Regret counts against the best arm on the reward, whichever guardrail it harms: with guardrails it is their price.");
    }
    text
}

/// What regret counts: conversions, or the value of a numeric reward.
fn unit(scenario: &Scenario) -> &'static str {
    if scenario.numeric {
        "of reward value"
    } else {
        "conversions"
    }
}

/// One row per policy; with guardrails also the share of visitors served a harmful arm and the
/// largest weight a harmful arm had.
fn summary_table(summaries: &[PolicySummary]) -> String {
    let guarded = summaries.iter().any(|s| s.harm_served.is_some());
    let mut out = String::from("<table><tr><th>policy</th><th>repetitions</th><th>regret</th><th>± sd</th><th>per ln hour</th><th>per hour</th><th>best-arm share, last day</th><th>lift vs holdout: estimate</th><th>truth</th>");
    if guarded {
        out.push_str(
            "<th>served a harmful arm</th><th>± sd</th><th>harmful arm's largest weight</th>",
        );
    }
    out.push_str("</tr>");
    let cell = |x: Option<f64>| x.map_or_else(|| "-".to_string(), |x| format!("{x:.5}"));
    let percent =
        |x: Option<f64>| x.map_or_else(|| "-".to_string(), |x| format!("{:.2}%", x * 100.0));
    for s in summaries {
        let _ = write!(
            out,
            "<tr><td style=\"color:{}\">{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.3}</td><td>{:.4}</td><td>{:.1}%</td><td>{}</td><td>{}</td>",
            color(s.policy),
            s.policy.name(),
            s.repetitions,
            s.regret_mean,
            s.regret_sd,
            s.regret_per_ln_hour,
            s.regret_per_hour,
            s.best_share_last_day * 100.0,
            cell(s.lift_estimate),
            cell(s.lift_true)
        );
        if guarded {
            let _ = write!(
                out,
                "<td>{}</td><td>{}</td><td>{}</td>",
                percent(s.harm_served),
                percent(s.harm_served_sd),
                s.harmful_weight_max
                    .map_or_else(|| "-".to_string(), |w| format!("{w:.3}"))
            );
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    out
}

const STYLE: &str = r#"
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 820px; padding: 0 10px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.1em; margin-top: 2em; }
.note { color: #555; } .headline { font-size: 1.1em; background: #f4f6fa; padding: 0.8em 1em; border-left: 4px solid #4e79a7; }
svg { max-width: 100%; height: auto; overflow: visible; }
.tick { font-size: 12px; fill: #444; } .axis-title { font-size: 12px; fill: #222; } .marker-label { font-size: 11px; fill: #666; }
.grid { stroke: #e6e6e6; } .axis { stroke: #888; } .marker { stroke: #666; stroke-dasharray: 4 3; }
.legend span { margin-right: 1.2em; white-space: nowrap; } .legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
table { border-collapse: collapse; } td, th { padding: 2px 8px; text-align: right; border-bottom: 1px solid #eee; }
td:first-child, th:first-child { text-align: left; }
"#;

/// A self-contained HTML page of a simulation's traces and summaries.
pub fn html(scenario: &Scenario, traces: &[Trace], summaries: &[PolicySummary]) -> String {
    let mut by_policy: BTreeMap<Policy, Vec<&Trace>> = BTreeMap::new();
    for t in traces {
        by_policy.entry(t.policy).or_default().push(t);
    }
    let (markers, marker_note) = markers(scenario);
    let chart = |y_title: &str, share: bool, series: fn(&Trace) -> &Vec<f64>| {
        LineChart {
            x: XScale::Hours,
            x_title: "time since the start".into(),
            y_title: y_title.into(),
            share,
            lines: lines(&by_policy, series),
            markers: markers.clone(),
            width: 800.0,
            height: 300.0,
        }
        .svg()
    };
    let mut legend = String::from("<p class=\"legend\">");
    for policy in by_policy.keys() {
        let _ = write!(
            legend,
            r#"<span><i style="background:{}"></i>{}</span>"#,
            color(*policy),
            policy.name()
        );
    }
    legend.push_str("</p>");
    let name = escape(&scenario.name);
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>levered simulate · {name}</title>
<style>{STYLE}</style></head><body>
<h1>{name}</h1>
<p class="headline">{headline}</p>
<h2>Cumulative regret ({unit} lost to the best arm of each visitor's context)</h2>
{regret}
{legend}
<p class="note">Lines are the mean over {repetitions} repetitions, shaded bands ± one standard deviation.</p>
{marker_note}
<h2>Share of each hour's visitors served their context's best arm</h2>
{best}
{legend}
<h2>Summary</h2>
{table}
</body></html>
"#,
        headline = headline(scenario, summaries),
        unit = unit(scenario),
        regret = chart(
            &format!("cumulative regret ({})", unit(scenario)),
            false,
            |t| &t.regret
        ),
        best = chart("best-arm share", true, |t| &t.best_share),
        repetitions = scenario.repetitions,
        table = summary_table(summaries),
    )
}
