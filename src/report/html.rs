//! A self-contained HTML page per optimization (inline SVG and CSS, no script, no network):
//! posterior means with 95% intervals, allocation over time, P(best) over time, lift vs holdout.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::model::ArmReport;
use super::model::{HistoryRow, RunInfo};
use crate::domain::{ArmId, Role};
use crate::time::Instant;

const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];
const WIDTH: f64 = 760.0;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn color(index: usize) -> &'static str {
    PALETTE[index % PALETTE.len()]
}

/// A readable label for a variant JSON object: `level / level`.
fn label(variant: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(variant) {
        Ok(serde_json::Value::Object(map)) => map
            .values()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(" / "),
        _ => variant.to_string(),
    }
}

/// Posterior means with their 95% intervals, one row per arm.
fn intervals(arms: &[&ArmReport]) -> String {
    let row_height = 26.0;
    let left = 260.0;
    let height = row_height * arms.len() as f64 + 40.0;
    let low = arms.iter().map(|a| a.ci_low).fold(f64::INFINITY, f64::min);
    let high = arms
        .iter()
        .map(|a| a.ci_high)
        .fold(f64::NEG_INFINITY, f64::max);
    let span = (high - low).max(f64::EPSILON);
    let x = |v: f64| left + (v - low) / span * (WIDTH - left - 30.0);
    let mut svg = format!(
        r#"<svg viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img">"#
    );
    for (i, arm) in arms.iter().enumerate() {
        let y = 20.0 + row_height * i as f64;
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end" class="label">{} · {}</text><line x1="{:.1}" x2="{:.1}" y1="{y}" y2="{y}" stroke="{}" stroke-width="3"/><circle cx="{:.1}" cy="{y}" r="5" fill="{}"><title>mean {:.5}, 95% [{:.5}, {:.5}]</title></circle>"#,
            left - 10.0,
            y + 4.0,
            arm.arm_id,
            escape(&label(&arm.variant)),
            x(arm.ci_low),
            x(arm.ci_high),
            color(i),
            x(arm.mean),
            color(i),
            arm.mean,
            arm.ci_low,
            arm.ci_high
        );
    }
    let axis_y = height - 12.0;
    let _ = write!(
        svg,
        r#"<text x="{left}" y="{axis_y}" class="axis">{low:.4}</text><text x="{}" y="{axis_y}" text-anchor="end" class="axis">{high:.4}</text></svg>"#,
        WIDTH - 30.0
    );
    svg
}

/// One line per arm of `value(row)` over the runs.
fn over_time(history: &[&HistoryRow], value: impl Fn(&HistoryRow) -> Option<f64>) -> String {
    let height = 240.0;
    let (left, bottom, top) = (50.0, 30.0, 10.0);
    let times: Vec<Instant> = {
        let mut t: Vec<Instant> = history.iter().map(|h| h.as_of).collect();
        t.sort_unstable();
        t.dedup();
        t
    };
    let epoch = Instant::from_micros(0);
    let (first, last) = (
        times.first().copied().unwrap_or(epoch),
        times.last().copied().unwrap_or(epoch),
    );
    let span = last.micros_since(first).max(1) as f64;
    let x = |t: Instant| left + t.micros_since(first) as f64 / span * (WIDTH - left - 20.0);
    let y = |v: f64| top + (1.0 - v) * (height - top - bottom);
    let mut arms: BTreeMap<(usize, ArmId), Vec<(Instant, f64)>> = BTreeMap::new();
    let mut order: Vec<ArmId> = Vec::new();
    for h in history {
        if !order.contains(&h.arm_id) {
            order.push(h.arm_id);
        }
        let index = order.iter().position(|a| a == &h.arm_id).unwrap_or(0);
        if let Some(v) = value(h) {
            arms.entry((index, h.arm_id))
                .or_default()
                .push((h.as_of, v));
        }
    }
    let mut svg = format!(
        r#"<svg viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img">"#
    );
    for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let _ = write!(
            svg,
            r##"<line x1="{left}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end" class="axis">{tick}</text>"##,
            WIDTH - 20.0,
            y(tick),
            y(tick),
            left - 6.0,
            y(tick) + 4.0
        );
    }
    for ((index, arm), points) in &arms {
        let path: Vec<String> = points
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"><title>arm {}</title></polyline>"#,
            color(*index),
            path.join(" "),
            arm
        );
        if points.len() == 1 {
            let (cx, cy) = (x(points[0].0), y(points[0].1));
            let _ = write!(
                svg,
                r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="4" fill="{}"/>"#,
                color(*index)
            );
        }
    }
    let axis_y = height - 8.0;
    let _ = write!(
        svg,
        r#"<text x="{left}" y="{axis_y}" class="axis">{}</text><text x="{}" y="{axis_y}" text-anchor="end" class="axis">{}</text></svg>"#,
        first.rfc3339(),
        WIDTH - 20.0,
        last.rfc3339()
    );
    svg
}

fn legend(arms: &[&ArmReport]) -> String {
    let mut out = String::from(r#"<p class="legend">"#);
    for (i, arm) in arms.iter().enumerate() {
        let _ = write!(
            out,
            r#"<span><i style="background:{}"></i>{} · {}</span>"#,
            color(i),
            arm.arm_id,
            escape(&label(&arm.variant))
        );
    }
    out.push_str("</p>");
    out
}

/// The page for one optimization's latest run and its history.
pub fn page(run: &RunInfo, arms: &[ArmReport], history: &[HistoryRow]) -> String {
    let bandit: Vec<&ArmReport> = arms
        .iter()
        .filter(|a| a.role == Role::Bandit && a.context.is_pooled())
        .collect();
    let pooled: Vec<&HistoryRow> = history
        .iter()
        .filter(|h| h.context.is_pooled() && h.role == Role::Bandit)
        .collect();
    let holdout: Vec<&ArmReport> = arms
        .iter()
        .filter(|a| a.lift_vs_holdout.is_some())
        .collect();
    let mut lift = String::new();
    if holdout.is_empty() {
        lift.push_str("<p>No lift to show: the optimization has no holdout, or too few holdout units yet.</p>");
    } else {
        lift.push_str("<table><tr><th>arm</th><th>relative lift</th><th>95% interval</th></tr>");
        for a in holdout {
            let _ = write!(
                lift,
                "<tr><td>{}</td><td>{:.5}</td><td>[{:.5}, {:.5}]</td></tr>",
                a.arm_id,
                a.lift_vs_holdout.unwrap_or(f64::NAN),
                a.lift_ci_low.unwrap_or(f64::NAN),
                a.lift_ci_high.unwrap_or(f64::NAN)
            );
        }
        lift.push_str("</table>");
    }
    if let Some(d) = &run.diagnostics {
        let _ = write!(lift, "<pre>{}</pre>", escape(&super::table::diagnostics(d)));
    }
    let mut rows = String::new();
    for a in arms {
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.5}</td><td>[{:.5}, {:.5}]</td><td>{}</td><td>{}</td></tr>",
            escape(a.context.as_str()),
            a.arm_id,
            escape(&label(&a.variant)),
            a.units,
            a.conversions,
            a.mean,
            a.ci_low,
            a.ci_high,
            a.p_best.map_or("-".into(), |p| format!("{p:.4}")),
            a.weight_new.map_or("-".into(), |w| format!("{w:.4}")),
        );
    }
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>levered · {name}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 800px; color: #222; }}
h1 {{ font-size: 1.5em; }} h2 {{ font-size: 1.1em; margin-top: 2em; }}
.label, .axis {{ font-size: 12px; fill: #444; }}
.legend span {{ margin-right: 1em; white-space: nowrap; }} .legend i {{ display: inline-block; width: 10px; height: 10px; margin-right: 4px; }}
table {{ border-collapse: collapse; }} td, th {{ padding: 2px 8px; text-align: right; border-bottom: 1px solid #eee; white-space: nowrap; }}
td:nth-child(3), th:nth-child(3) {{ text-align: left; white-space: normal; }}
</style></head><body>
<h1>{name}</h1>
<p>Run {run_id}, as of {as_of}; {units} mature units; seed {seed}.</p>
<h2>Posterior mean and 95% credible interval per arm</h2>
{intervals}
<h2>Allocation over time (traffic weight per arm)</h2>
{allocation}
{legend}
<h2>P(best) over time</h2>
{p_best}
<h2>Lift vs holdout</h2>
{lift}
<h2>Latest report</h2>
<table><tr><th>context</th><th>arm</th><th>variant</th><th>units</th><th>conversions</th><th>mean</th><th>95% interval</th><th>P(best)</th><th>weight</th></tr>
{rows}</table>
</body></html>
"#,
        name = escape(&run.optimization),
        run_id = escape(&run.run_id),
        as_of = run.as_of.rfc3339(),
        units = run.mature_units,
        seed = run.seed,
        intervals = intervals(&bandit),
        allocation = over_time(&pooled, |h| h.weight),
        legend = legend(&bandit),
        p_best = over_time(&pooled, |h| h.p_best),
    )
}
