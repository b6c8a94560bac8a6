//! The aligned terminal table of a run's arms.

use super::model::ArmReport;

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
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for arm in arms {
        rows.push(vec![
            arm.context.clone(),
            arm.arm_id.clone(),
            arm.variant.clone(),
            arm.status.clone(),
            arm.units.to_string(),
            arm.conversions.to_string(),
            number(Some(arm.mean), 5),
            number(Some(arm.ci_low), 5),
            number(Some(arm.ci_high), 5),
            number(arm.p_best, 4),
            number(arm.weight_prev, 4),
            number(arm.weight_new, 4),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = format!("{title}\n");
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                let pad = widths[c] - cell.chars().count();
                if c <= 3 {
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
