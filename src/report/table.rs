//! Aligned terminal tables: a run's arms, and the allocation history.

use super::model::{ArmReport, Diagnostics, HistoryRow};

fn number(x: Option<f64>, decimals: usize) -> String {
    x.map_or_else(|| "-".to_string(), |x| format!("{x:.decimals$}"))
}

/// One line per arm: id, variant, units, conversions, mean and interval, P(best), weights.
pub fn table(title: &str, arms: &[ArmReport]) -> String {
    let header = [
        "context",
        "arm",
        "variant",
        "status",
        "units",
        "conv",
        "mean",
        "ci_low",
        "ci_high",
        "p_best",
        "weight_prev",
        "weight",
    ];
    // Per guardrail metric `m`, a column `m p_harm`: P(harm), `!` when harmful.
    let guardrails: Vec<&str> = arms
        .iter()
        .find(|a| !a.guardrails.is_empty())
        .map_or_else(Vec::new, |a| {
            a.guardrails.iter().map(|g| g.metric.as_str()).collect()
        });
    let mut header: Vec<String> = header.iter().map(|s| s.to_string()).collect();
    header.extend(guardrails.iter().map(|m| format!("{m} p_harm")));
    let mut rows: Vec<Vec<String>> = vec![header];
    for arm in arms {
        let harm =
            guardrails
                .iter()
                .map(|m| match arm.guardrails.iter().find(|g| g.metric == *m) {
                    Some(g) if g.harmful => format!("{}!", number(g.p_harm, 4)),
                    Some(g) => number(g.p_harm, 4),
                    None => number(None, 4),
                });
        let mut row = vec![
            arm.context.to_string(),
            arm.arm_id.to_string(),
            arm.variant.clone(),
            arm.status.to_string(),
            arm.units.to_string(),
            arm.conversions.to_string(),
            number(Some(arm.mean), 5),
            number(Some(arm.ci_low), 5),
            number(Some(arm.ci_high), 5),
            number(arm.p_best, 4),
            number(arm.weight_prev, 4),
            number(arm.weight_new, 4),
        ];
        row.extend(harm);
        rows.push(row);
    }
    aligned(title, rows, &[0, 1, 2, 3])
}

/// Every stored run's rows of `history`, oldest first: run, as_of, context, arm, status, weight,
/// P(best), mean and interval, and the arm's status changes in that run.
pub fn history_table(title: &str, history: &[HistoryRow]) -> String {
    let header = [
        "run_id", "as_of", "context", "arm", "status", "weight", "p_best", "mean", "ci_low",
        "ci_high", "change",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for h in history {
        rows.push(vec![
            h.run_id.clone(),
            h.as_of.rfc3339(),
            h.context.to_string(),
            h.arm_id.to_string(),
            h.status.to_string(),
            number(h.weight, 4),
            number(h.p_best, 4),
            number(Some(h.mean), 5),
            number(Some(h.ci_low), 5),
            number(Some(h.ci_high), 5),
            h.change.clone().unwrap_or_default(),
        ]);
    }
    aligned(title, rows, &[0, 1, 2, 3, 4, 10])
}

/// `rows` (the header first) in columns under `title`: the columns `left` aligned left, the others
/// (numbers) right.
fn aligned(title: &str, rows: Vec<Vec<String>>, left: &[usize]) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = format!("{title}\n");
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                let pad = widths[c] - cell.chars().count();
                if left.contains(&c) {
                    format!("{cell}{}", " ".repeat(pad))
                } else {
                    format!("{}{cell}", " ".repeat(pad))
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The run's diagnostics as text lines under the table: lift over the holdout and the SRM test.
pub fn diagnostics(d: &Diagnostics) -> String {
    let mut out = String::new();
    if let Some(h) = d.holdout_share {
        out.push_str(&format!("holdout share: {h:.4}\n"));
    }
    match (&d.lift, &d.lift_note) {
        (Some(l), _) => {
            out.push_str(&format!(
                "lift vs holdout: {:+.6} (95% {:+.6} to {:+.6})",
                l.difference, l.difference_low, l.difference_high
            ));
            if let (Some(r), Some(lo), Some(hi)) = (l.relative, l.relative_low, l.relative_high) {
                out.push_str(&format!(
                    ", relative {:+.2}% (95% {:+.2}% to {:+.2}%)",
                    100.0 * r,
                    100.0 * lo,
                    100.0 * hi
                ));
            }
            out.push_str(&format!(
                "; {} vs {} units in {} strata\n",
                l.treated_units, l.holdout_units, l.strata
            ));
        }
        (None, Some(note)) if d.holdout_share.is_some() => {
            out.push_str(&format!("lift vs holdout: blank: {note}\n"));
        }
        (None, _) => {}
    }
    if let Some(note) = &d.context_note {
        out.push_str(&format!("contexts: {note}\n"));
    }
    match &d.srm {
        Some(s) => out.push_str(&format!(
            "sample ratio: {}{} ({})\n",
            srm_text(s),
            if s.flagged { ", MISMATCH" } else { "" },
            d.srm_note
        )),
        None => out.push_str(&format!("sample ratio: {}\n", d.srm_note)),
    }
    out
}

/// `chi-square 3.2, df 1, p = 0.074`, and the units on arms served at weight 0 when there are any.
pub fn srm_text(s: &crate::model::Srm) -> String {
    let statistic = if s.statistic < 1e6 {
        format!("{:.1}", s.statistic)
    } else {
        format!("{:.3e}", s.statistic)
    };
    // p is 0 exactly when units reached an arm served at weight 0; it underflows below 1e-300.
    let p = match s.p_value {
        0.0 if s.unexpected_units > 0.0 => "p = 0".to_string(),
        p if p < 1e-300 => "p < 1e-300".to_string(),
        p if p < 1e-3 => format!("p = {p:.2e}"),
        p => format!("p = {p:.3}"),
    };
    let mut text = format!("chi-square {statistic}, df {}, {p}", s.degrees_of_freedom);
    if s.unexpected_units > 0.0 {
        text.push_str(&format!(
            ", {} units on arms served at weight 0",
            s.unexpected_units
        ));
    }
    text
}
