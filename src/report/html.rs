//! A self-contained HTML page per optimization (inline SVG and CSS, no script, no network): the
//! conclusion in one paragraph, posterior means with 95% intervals, allocation and P(best) over
//! time, one small chart per context, lift vs holdout and the report table.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::chart::{self, escape, Interval, IntervalChart, Line, LineChart, XScale, GREY};
use super::model::{ArmReport, GuardrailEstimate, HistoryRow, RunInfo};
use crate::domain::{ArmId, ArmStatus, ContextKey, Role};

const WIDTH: f64 = 800.0;

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

/// `arm 3`, or `holdout`.
fn arm_text(id: ArmId) -> String {
    match id {
        ArmId::Holdout => "holdout".into(),
        id => format!("arm {id}"),
    }
}

fn arm_name(arm: &ArmReport) -> String {
    format!("{} · {}", arm_text(arm.arm_id), label(&arm.variant))
}

/// Three significant digits: what a sentence or a tick needs (the table keeps five decimals).
fn short(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let decimals = (2 - x.abs().log10().floor() as i32).max(0) as usize;
    format!("{x:.decimals$}")
}

fn percent(x: f64) -> String {
    format!("{:+.1}%", x * 100.0)
}

/// One colour per arm of the pooled rows, in arm order; the holdout is grey.
fn colors(pooled: &[&ArmReport]) -> BTreeMap<ArmId, String> {
    let mut ids: Vec<ArmId> = pooled.iter().map(|a| a.arm_id).collect();
    ids.sort_unstable();
    let mut bandit = 0;
    ids.into_iter()
        .map(|id| {
            let color = if id == ArmId::Holdout {
                GREY
            } else {
                bandit += 1;
                chart::PALETTE[(bandit - 1) % chart::PALETTE.len()]
            };
            (id, color.to_string())
        })
        .collect()
}

/// The bandit arm of the baseline variant (compared as JSON objects: key order does not matter).
fn baseline_arm<'a>(arms: &[&'a ArmReport], baseline: Option<&str>) -> Option<&'a ArmReport> {
    let parse = |text: &str| serde_json::from_str::<serde_json::Value>(text).ok();
    let wanted = parse(baseline?)?;
    arms.iter()
        .find(|a| a.role == Role::Bandit && parse(&a.variant).as_ref() == Some(&wanted))
        .copied()
}

/// The arm with the highest P(best) (the highest mean when no P(best) was computed).
fn leader<'a>(arms: &[&'a ArmReport]) -> Option<&'a ArmReport> {
    arms.iter()
        .filter(|a| a.role == Role::Bandit)
        .max_by(|a, b| {
            let key = |a: &ArmReport| (a.p_best.unwrap_or(-1.0), a.mean);
            key(a)
                .partial_cmp(&key(b))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .copied()
}

/// The conclusion of the run in a few sentences: the leading arm, how sure the posterior is, its
/// lift over the baseline arm and the bandit's lift over the holdout.
fn headline(run: &RunInfo, pooled: &[&ArmReport], baseline: Option<&str>) -> String {
    let Some(best) = leader(pooled) else {
        return "No arm has a posterior yet.".into();
    };
    let mut text = format!(
        "<b>{}</b> leads with a mean of {} (95% interval {} to {})",
        escape(&arm_name(best)),
        short(best.mean),
        short(best.ci_low),
        short(best.ci_high)
    );
    match best.p_best {
        Some(p) if p >= 0.95 => {
            let _ = write!(text, " and P(best) {p:.3}.");
        }
        Some(p) => {
            let _ = write!(
                text,
                " but P(best) is only {p:.3}: no arm is clearly best yet."
            );
        }
        None => text.push('.'),
    }
    let base = baseline_arm(pooled, baseline);
    match base {
        Some(base) if base.arm_id == best.arm_id => text.push_str(" It is the baseline."),
        Some(base) if base.mean > 0.0 => {
            let _ = write!(
                text,
                " That is {} over the baseline, {} ({}).",
                percent(best.mean / base.mean - 1.0),
                escape(&arm_name(base)),
                short(base.mean)
            );
        }
        _ => {}
    }
    if let Some(lift) = run.diagnostics.as_ref().and_then(|d| d.lift.as_ref()) {
        let _ = match (lift.relative, lift.relative_low, lift.relative_high) {
            (Some(r), Some(l), Some(h)) => write!(
                text,
                " Traffic the bandit allocated did {} vs the holdout (95% interval {} to {}).",
                percent(r),
                percent(l),
                percent(h)
            ),
            _ => write!(
                text,
                " Traffic the bandit allocated did {} per unit vs the holdout (95% interval {} to {}).",
                short(lift.difference),
                short(lift.difference_low),
                short(lift.difference_high)
            ),
        };
    }
    text
}

fn interval_rows(
    arms: &[&ArmReport],
    colors: &BTreeMap<ArmId, String>,
    full: bool,
) -> Vec<Interval> {
    let mut arms = arms.to_vec();
    arms.sort_by_key(|a| a.arm_id);
    arms.iter()
        .map(|a| {
            let label = if full {
                arm_name(a)
            } else {
                arm_text(a.arm_id)
            };
            interval(a, label, (a.mean, a.ci_low, a.ci_high), colors)
        })
        .collect()
}

/// The row of arm `a` in an interval chart, in the arm's colour.
fn interval(
    a: &ArmReport,
    label: String,
    (mean, low, high): (f64, f64, f64),
    colors: &BTreeMap<ArmId, String>,
) -> Interval {
    Interval {
        label,
        mean,
        low,
        high,
        color: colors
            .get(&a.arm_id)
            .cloned()
            .unwrap_or_else(|| GREY.into()),
    }
}

/// The arms at the lowest weight of the latest run (within 0.1%: the floor, or dropped at 0), when there are
/// at least two of them and at least one arm above them: drawn as one combined line.
fn floor_group(pooled: &[&ArmReport]) -> Vec<ArmId> {
    let weighted: Vec<(ArmId, f64)> = pooled
        .iter()
        .filter(|a| a.role == Role::Bandit)
        .filter_map(|a| a.weight_new.map(|w| (a.arm_id, w)))
        .collect();
    let lowest = weighted
        .iter()
        .map(|w| w.1)
        .filter(|w| *w > 0.0)
        .fold(f64::INFINITY, f64::min);
    let group: Vec<ArmId> = weighted
        .iter()
        .filter(|(_, w)| *w <= lowest * (1.0 + 1e-3))
        .map(|w| w.0)
        .collect();
    if group.len() >= 2 && group.len() < weighted.len() {
        group
    } else {
        Vec::new()
    }
}

fn ids(arms: &[ArmId]) -> String {
    arms.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One line per arm (and one for the floor group) of `value(row)` over the runs, or a sentence
/// while there is only one run.
fn over_time(
    history: &[&HistoryRow],
    colors: &BTreeMap<ArmId, String>,
    group: &[ArmId],
    (title, value): (&str, fn(&HistoryRow) -> Option<f64>),
) -> String {
    let mut runs: Vec<i64> = history.iter().map(|h| h.as_of.micros()).collect();
    runs.sort_unstable();
    runs.dedup();
    if runs.len() < 2 {
        return "<p class=\"note\">One run so far: the lines over time start with the second run.</p>".into();
    }
    let mut series: BTreeMap<Option<ArmId>, BTreeMap<i64, f64>> = BTreeMap::new();
    for h in history {
        if let Some(v) = value(h) {
            let key = (!group.contains(&h.arm_id)).then_some(h.arm_id);
            *series
                .entry(key)
                .or_default()
                .entry(h.as_of.micros())
                .or_default() += v;
        }
    }
    let lines = series
        .into_iter()
        .map(|(arm, points)| Line {
            name: arm.map_or_else(
                || format!("arms {} at the floor (combined)", ids(group)),
                arm_text,
            ),
            color: arm
                .and_then(|a| colors.get(&a).cloned())
                .unwrap_or_else(|| GREY.into()),
            points: points.into_iter().map(|(t, v)| (t as f64, v)).collect(),
            band: Vec::new(),
            dashed: arm == Some(ArmId::Holdout),
        })
        .collect();
    LineChart {
        x: XScale::Time,
        x_title: "as of (UTC)".into(),
        y_title: title.into(),
        share: true,
        lines,
        markers: removals(history),
        width: WIDTH,
        height: 260.0,
    }
    .svg()
}

/// A marker at every run that dropped or retired arms: `arms 3, 4 dropped`.
fn removals(history: &[&HistoryRow]) -> Vec<(f64, String)> {
    let mut removed: BTreeMap<(i64, ArmStatus), Vec<ArmId>> = BTreeMap::new();
    for h in history {
        if h.change.is_some() && matches!(h.status, ArmStatus::Dropped | ArmStatus::Retired) {
            removed
                .entry((h.as_of.micros(), h.status))
                .or_default()
                .push(h.arm_id);
        }
    }
    removed
        .into_iter()
        .map(|((t, status), arms)| {
            let noun = if arms.len() == 1 { "arm" } else { "arms" };
            (t as f64, format!("{noun} {} {status}", ids(&arms)))
        })
        .collect()
}

fn legend(pooled: &[&ArmReport], colors: &BTreeMap<ArmId, String>, group: &[ArmId]) -> String {
    let mut arms = pooled.to_vec();
    arms.sort_by_key(|a| a.arm_id);
    let mut out = String::from(r#"<p class="legend">"#);
    for arm in arms.iter().filter(|a| !group.contains(&a.arm_id)) {
        let swatch = if arm.role == Role::Holdout {
            r#"<i class="dashed"></i>"#.to_string()
        } else {
            format!(
                r#"<i style="background:{}"></i>"#,
                colors.get(&arm.arm_id).map_or(GREY, String::as_str)
            )
        };
        let _ = write!(out, "<span>{swatch}{}</span>", escape(&arm_name(arm)));
    }
    if !group.is_empty() {
        let _ = write!(
            out,
            r#"<span><i style="background:{GREY}"></i>arms {} at the floor, combined</span>"#,
            ids(group)
        );
    }
    out.push_str("</p>");
    out
}

/// The rows of each context, in context order.
fn by_context<'a>(
    arms: impl IntoIterator<Item = &'a ArmReport>,
) -> BTreeMap<&'a ContextKey, Vec<&'a ArmReport>> {
    let mut cells: BTreeMap<&ContextKey, Vec<&ArmReport>> = BTreeMap::new();
    for a in arms {
        cells.entry(&a.context).or_default().push(a);
    }
    cells
}

/// Which arm leads in how many contexts: `Per context, arm 5 leads in 6 of 8 contexts, arm 2 in 2.`
fn context_leaders(arms: &[ArmReport]) -> Option<String> {
    let cells = by_context(arms.iter().filter(|a| !a.context.is_pooled()));
    let mut counts: BTreeMap<ArmId, usize> = BTreeMap::new();
    for cell in cells.values() {
        if let Some(best) = leader(cell) {
            *counts.entry(best.arm_id).or_default() += 1;
        }
    }
    let mut counts: Vec<(ArmId, usize)> = counts.into_iter().collect();
    counts.sort_by_key(|(arm, n)| (std::cmp::Reverse(*n), *arm));
    let ((first, n), rest) = counts.split_first()?;
    let mut text = format!(
        " Per context, {} leads in {n} of {} contexts",
        arm_text(*first),
        cells.len()
    );
    for (arm, n) in rest {
        let _ = write!(text, ", {} in {n}", arm_text(*arm));
    }
    text.push('.');
    Some(text)
}

/// One small interval chart per context on a shared axis, each titled with its leader.
fn small_multiples(arms: &[ArmReport], colors: &BTreeMap<ArmId, String>, x_title: &str) -> String {
    let cells = by_context(
        arms.iter()
            .filter(|a| !a.context.is_pooled() && a.role == Role::Bandit),
    );
    if cells.is_empty() {
        return String::new();
    }
    let rows: Vec<Vec<Interval>> = cells
        .values()
        .map(|c| interval_rows(c, colors, false))
        .collect();
    let all: Vec<Interval> = rows.iter().flatten().cloned().collect();
    let range = chart::span(&all, None);
    let mut out = format!(
        "<h2>Per context ({} contexts)</h2>\n<p class=\"note\">Each context's arms on one shared axis ({}); the title names the context's leader.</p>\n<div class=\"multiples\">",
        cells.len(),
        escape(x_title)
    );
    for ((context, cell), rows) in cells.iter().zip(&rows) {
        let units: i64 = cell.iter().map(|a| a.units).sum();
        let lead = leader(cell).map_or_else(String::new, |a| {
            format!(
                "leads: arm {}{}",
                a.arm_id,
                a.p_best
                    .map_or_else(String::new, |p| format!(", P(best) {p:.2}"))
            )
        });
        let _ = write!(
            out,
            "<figure><figcaption><b>{}</b> · {units} units · {lead}</figcaption>{}</figure>",
            escape(&context.as_str().replace('|', " · ")),
            IntervalChart {
                rows,
                x_title: "",
                reference: None,
                range: Some(range),
                width: 390.0,
                label_width: 60.0,
            }
            .svg()
        );
    }
    out.push_str("</div>");
    out
}

/// Per guardrail metric of the pooled rows: each arm's mean and 95% interval against the
/// baseline's mean, and a table of P(harm) with the harmful arms marked; empty without guardrails.
fn guardrail_panel(
    pooled: &[&ArmReport],
    colors: &BTreeMap<ArmId, String>,
    baseline: Option<&ArmReport>,
) -> String {
    let metrics: Vec<&str> = pooled
        .iter()
        .find(|a| !a.guardrails.is_empty())
        .map_or_else(Vec::new, |a| {
            a.guardrails.iter().map(|g| g.metric.as_str()).collect()
        });
    let mut out = String::new();
    for metric in metrics {
        let estimates: Vec<(&ArmReport, &GuardrailEstimate)> = pooled
            .iter()
            .filter_map(|a| Some((*a, a.guardrails.iter().find(|g| g.metric == metric)?)))
            .collect();
        let rows: Vec<Interval> = estimates
            .iter()
            .map(|(a, g)| interval(a, arm_name(a), (g.mean, g.ci_low, g.ci_high), colors))
            .collect();
        let reference = baseline
            .and_then(|b| b.guardrails.iter().find(|g| g.metric == metric))
            .map(|g| g.mean);
        let x_title = format!("{metric} per unit: posterior mean and 95% credible interval");
        let chart = IntervalChart {
            rows: &rows,
            x_title: &x_title,
            reference: reference.map(|r| (r, "baseline")),
            range: None,
            width: WIDTH,
            label_width: 300.0,
        }
        .svg();
        let harmful: Vec<String> = estimates
            .iter()
            .filter(|(_, g)| g.harmful)
            .map(|(a, _)| a.arm_id.to_string())
            .collect();
        let verdict = if harmful.is_empty() {
            "No arm is harmful on it.".to_string()
        } else {
            format!(
                "Harmful, held at the floor or dropped: arm {}.",
                harmful.join(", ")
            )
        };
        let mut table = String::from(
            "<table><tr><th>arm</th><th>variant</th><th>mean</th><th>95% interval</th><th>P(harm)</th><th>harmful</th></tr>",
        );
        for (a, g) in &estimates {
            let _ = write!(
                table,
                "<tr><td>{}</td><td>{}</td><td>{:.5}</td><td>[{:.5}, {:.5}]</td><td>{}</td><td>{}</td></tr>",
                a.arm_id,
                escape(&label(&a.variant)),
                g.mean,
                g.ci_low,
                g.ci_high,
                g.p_harm.map_or("baseline".into(), |p| format!("{p:.4}")),
                if g.harmful { "yes" } else { "no" }
            );
        }
        table.push_str("</table>");
        let _ = write!(
            out,
            "<h2>Guardrail {}</h2>{chart}<p class=\"note\">P(harm) is the posterior probability that an arm is worse than the baseline by more than the tolerance. {verdict}</p>{table}",
            escape(metric)
        );
    }
    out
}

fn lift_table(arms: &[ArmReport]) -> String {
    let holdout: Vec<&ArmReport> = arms
        .iter()
        .filter(|a| a.lift_vs_holdout.is_some())
        .collect();
    if holdout.is_empty() {
        return "<p>No lift to show: the optimization has no holdout, or too few holdout units yet.</p>".into();
    }
    let mut out = String::from(
        "<table><tr><th>context</th><th>arm</th><th>relative lift</th><th>95% interval</th></tr>",
    );
    for a in holdout {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>[{}, {}]</td></tr>",
            escape(a.context.as_str()),
            a.arm_id,
            percent(a.lift_vs_holdout.unwrap_or(f64::NAN)),
            percent(a.lift_ci_low.unwrap_or(f64::NAN)),
            percent(a.lift_ci_high.unwrap_or(f64::NAN))
        );
    }
    out.push_str("</table>");
    out
}

fn report_rows(arms: &[&ArmReport]) -> String {
    let mut rows = String::from("<table><tr><th>arm</th><th>variant</th><th>status</th><th>units</th><th>conversions</th><th>mean</th><th>95% interval</th><th>P(best)</th><th>weight</th></tr>");
    for a in arms {
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.5}</td><td>[{:.5}, {:.5}]</td><td>{}</td><td>{}</td></tr>",
            a.arm_id,
            escape(&label(&a.variant)),
            a.status,
            a.units,
            a.conversions,
            a.mean,
            a.ci_low,
            a.ci_high,
            a.p_best.map_or("-".into(), |p| format!("{p:.4}")),
            a.weight_new.map_or("-".into(), |w| format!("{w:.4}")),
        );
    }
    rows.push_str("</table>");
    rows
}

/// The pooled rows as a table, each context's rows in a folded section of its own.
fn report_tables(arms: &[ArmReport]) -> String {
    let mut out = String::new();
    for (context, rows) in by_context(arms) {
        if context.is_pooled() {
            out.insert_str(0, &report_rows(&rows));
        } else {
            let units: i64 = rows.iter().map(|a| a.units).sum();
            let _ = write!(
                out,
                "<details><summary>{} · {units} units</summary>{}</details>",
                escape(context.as_str()),
                report_rows(&rows)
            );
        }
    }
    out
}

const STYLE: &str = r#"
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 820px; padding: 0 10px; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.1em; margin-top: 2em; }
.meta, .note { color: #555; } .headline { font-size: 1.1em; background: #f4f6fa; padding: 0.8em 1em; border-left: 4px solid #4e79a7; }
svg { max-width: 100%; height: auto; overflow: visible; }
.label, .tick { font-size: 12px; fill: #444; } .axis-title { font-size: 12px; fill: #222; }
.marker-label { font-size: 11px; fill: #666; }
.grid { stroke: #e6e6e6; } .axis { stroke: #888; } .marker { stroke: #666; stroke-dasharray: 4 3; }
.legend span { margin-right: 1em; white-space: nowrap; display: inline-block; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
.legend i.dashed { background: repeating-linear-gradient(90deg, #8c8c8c 0 4px, transparent 4px 6px); }
.multiples { display: flex; flex-wrap: wrap; gap: 10px; } figure { margin: 0; width: 395px; }
figcaption { font-size: 12px; }
table { border-collapse: collapse; margin: 0.5em 0; }
td, th { padding: 2px 8px; text-align: right; border-bottom: 1px solid #eee; white-space: nowrap; }
td:nth-child(2), th:nth-child(2) { text-align: left; white-space: normal; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #fafafa; padding: 0.6em; }
details summary { cursor: pointer; margin-top: 0.3em; }
"#;

/// The page for one optimization's latest run and its history; `baseline` is the variant (JSON
/// text) of the definition's baseline arm, when the definition still has the optimization.
pub fn page(
    run: &RunInfo,
    arms: &[ArmReport],
    history: &[HistoryRow],
    baseline: Option<&str>,
) -> String {
    let pooled: Vec<&ArmReport> = arms.iter().filter(|a| a.context.is_pooled()).collect();
    let colors = colors(&pooled);
    let bandit: Vec<&ArmReport> = pooled
        .iter()
        .copied()
        .filter(|a| a.role == Role::Bandit)
        .collect();
    let group = floor_group(&bandit);
    let pooled_history: Vec<&HistoryRow> =
        history.iter().filter(|h| h.context.is_pooled()).collect();
    let metric = run.metric.as_deref().unwrap_or("reward");
    let x_title = format!("{metric} per unit: posterior mean and 95% credible interval");
    let base = baseline_arm(&bandit, baseline);
    let reference_label = base.map(|b| format!("baseline, arm {}", b.arm_id));
    let intervals = IntervalChart {
        rows: &interval_rows(&pooled, &colors, true),
        x_title: &x_title,
        reference: base.map(|b| b.mean).zip(reference_label.as_deref()),
        range: None,
        width: WIDTH,
        label_width: 300.0,
    }
    .svg();
    let diagnostics = run.diagnostics.as_ref().map_or_else(String::new, |d| {
        format!("<pre>{}</pre>", escape(&super::table::diagnostics(d)))
    });
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>levered · {name}</title>
<style>{STYLE}</style></head><body>
<h1>{name}</h1>
<p class="meta">Reward {metric} · run {run_id} · as of {as_of} · {units} mature units · seed {seed}</p>
<p class="headline">{headline}</p>
<h2>Posterior mean and 95% credible interval per arm</h2>
{intervals}
<p class="note">{reference}</p>
<h2>Allocation over time (traffic weight per arm)</h2>
{allocation}
{legend}
<h2>P(best) over time</h2>
{p_best}
{contexts}
{guardrails}
<h2>Lift vs holdout</h2>
{lift}
{diagnostics}
<h2>Latest report</h2>
{tables}
</body></html>
"#,
        name = escape(&run.optimization),
        metric = escape(metric),
        run_id = escape(&run.run_id),
        as_of = chart::date_time(run.as_of),
        units = run.mature_units,
        seed = run.seed,
        headline = headline(run, &pooled, baseline) + &context_leaders(arms).unwrap_or_default(),
        reference = base.map_or_else(
            || "Dots are posterior means, lines their 95% credible intervals.".into(),
            |b| format!("Dots are posterior means, lines their 95% credible intervals; the dashed line is the baseline's mean (arm {}).", b.arm_id)
        ),
        allocation = over_time(&pooled_history, &colors, &group, ("traffic weight", |h| h.weight)),
        legend = legend(&pooled, &colors, &group),
        p_best = over_time(&pooled_history, &colors, &group, ("P(best)", |h| h.p_best)),
        contexts = small_multiples(arms, &colors, &x_title),
        guardrails = guardrail_panel(&bandit, &colors, base),
        lift = lift_table(arms),
        tables = report_tables(arms),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm(context: &str, id: u32, p_best: f64, weight: f64) -> ArmReport {
        ArmReport {
            context: ContextKey::new(context),
            arm_id: ArmId::Arm(id),
            role: Role::Bandit,
            variant: format!(r#"{{"color":"c{id}","size":"s"}}"#),
            status: ArmStatus::Active,
            units: 100,
            conversions: 10,
            rate: Some(0.1),
            alpha: 11.0,
            beta: 91.0,
            mean: 0.1 + f64::from(id) / 100.0,
            ci_low: 0.05,
            ci_high: 0.2,
            p_best: Some(p_best),
            expected_loss: None,
            weight_prev: None,
            weight_new: Some(weight),
            lift_vs_holdout: None,
            lift_ci_low: None,
            lift_ci_high: None,
            guardrails: Vec::new(),
        }
    }

    #[test]
    fn arms_at_the_lowest_weight_are_one_group_when_another_arm_is_above_them() {
        let arms = [
            arm("*", 1, 0.01, 0.02),
            arm("*", 2, 0.9, 0.94),
            arm("*", 3, 0.09, 0.020_000_1),
            arm("*", 4, 0.0, 0.02),
        ];
        let refs: Vec<&ArmReport> = arms.iter().collect();
        assert_eq!(
            floor_group(&refs),
            vec![ArmId::Arm(1), ArmId::Arm(3), ArmId::Arm(4)]
        );
        // An equal split (burn-in) has no arm above the rest; one arm at the floor is no group.
        let even: Vec<ArmReport> = (1..=3).map(|id| arm("*", id, 0.3, 1.0 / 3.0)).collect();
        assert!(floor_group(&even.iter().collect::<Vec<_>>()).is_empty());
        let single = [arm("*", 1, 0.1, 0.02), arm("*", 2, 0.9, 0.98)];
        assert!(floor_group(&single.iter().collect::<Vec<_>>()).is_empty());
    }

    #[test]
    fn the_baseline_is_found_whatever_the_key_order_of_its_variant() {
        let arms = [arm("*", 1, 0.1, 0.5), arm("*", 2, 0.9, 0.5)];
        let refs: Vec<&ArmReport> = arms.iter().collect();
        let found = baseline_arm(&refs, Some(r#"{"size": "s", "color": "c1"}"#));
        assert_eq!(found.map(|a| a.arm_id), Some(ArmId::Arm(1)));
        assert!(baseline_arm(&refs, Some(r#"{"color":"c9","size":"s"}"#)).is_none());
    }

    #[test]
    fn the_headline_tells_a_clear_leader_from_an_unclear_one() {
        let run = RunInfo {
            optimization: "o".into(),
            run_id: "r".into(),
            metric: None,
            as_of: crate::time::Instant::from_micros(0),
            trained_at: crate::time::Instant::from_micros(0),
            seed: 1,
            scan_mode: "full".into(),
            mature_units: 200,
            unmatched: BTreeMap::new(),
            warnings: Vec::new(),
            diagnostics: None,
        };
        let clear = [arm("*", 1, 0.02, 0.02), arm("*", 2, 0.98, 0.98)];
        let text = headline(
            &run,
            &clear.iter().collect::<Vec<_>>(),
            Some(r#"{"color":"c1","size":"s"}"#),
        );
        // Means 0.11 and 0.12: arm 2 is 9.1% over the baseline.
        assert!(
            text.starts_with("<b>arm 2 · c2 / s</b> leads with a mean of 0.120"),
            "{text}"
        );
        assert!(
            text.contains("P(best) 0.980.") && text.contains("+9.1% over the baseline, arm 1"),
            "{text}"
        );
        let unclear = [arm("*", 1, 0.4, 0.4), arm("*", 2, 0.6, 0.6)];
        let text = headline(&run, &unclear.iter().collect::<Vec<_>>(), None);
        assert!(
            text.contains("P(best) is only 0.600: no arm is clearly best yet."),
            "{text}"
        );
    }

    #[test]
    fn the_leaders_of_the_contexts_are_counted() {
        let arms = [
            arm("*", 1, 0.5, 0.5),
            arm("*", 2, 0.5, 0.5),
            arm("a=x", 1, 0.2, 0.2),
            arm("a=x", 2, 0.8, 0.8),
            arm("a=y", 1, 0.7, 0.7),
            arm("a=y", 2, 0.3, 0.3),
            arm("a=z", 1, 0.1, 0.1),
            arm("a=z", 2, 0.9, 0.9),
        ];
        assert_eq!(
            context_leaders(&arms).as_deref(),
            Some(" Per context, arm 2 leads in 2 of 3 contexts, arm 1 in 1.")
        );
        assert_eq!(context_leaders(&arms[..2]), None);
    }
}
