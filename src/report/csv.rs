//! CSV renderings of the allocation and the report. Weights carry 17 significant digits so that a
//! reader recovers the exact double.

use super::model::HistoryRow;
use super::model::{AllocationRow, ArmReport};

/// `x` with 17 significant digits, in plain decimal notation.
pub fn sig17(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return if x.is_nan() {
            String::new()
        } else {
            format!("{x}")
        };
    }
    let exponent = x.abs().log10().floor() as i32;
    let decimals = (16 - exponent).clamp(0, 340) as usize;
    format!("{x:.decimals$}")
}

fn optional(x: Option<f64>) -> String {
    x.map(sig17).unwrap_or_default()
}

/// Quotes a CSV field when it needs it (RFC 4180).
pub fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

pub const ALLOCATION_HEADER: &str =
    "optimization,run_id,trained_at,context,arm_id,role,variant,weight,status";

pub fn allocation(rows: &[AllocationRow]) -> String {
    let mut out = format!("{ALLOCATION_HEADER}\n");
    for r in rows {
        let fields = [
            field(&r.optimization),
            field(&r.run_id),
            field(&r.trained_at),
            field(r.context.as_str()),
            field(&r.arm_id.to_string()),
            field(r.role.as_str()),
            field(&r.variant),
            sig17(r.weight),
            field(r.status.as_str()),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

pub const REPORT_HEADER: &str = "context,arm_id,role,variant,status,units,conversions,rate,alpha,beta,mean,ci_low,ci_high,p_best,expected_loss,weight_prev,weight_new,lift_vs_holdout,lift_ci_low,lift_ci_high";

pub fn report(rows: &[ArmReport]) -> String {
    let mut out = format!("{REPORT_HEADER}\n");
    for r in rows {
        let fields = [
            field(r.context.as_str()),
            field(&r.arm_id.to_string()),
            field(r.role.as_str()),
            field(&r.variant),
            field(r.status.as_str()),
            r.units.to_string(),
            r.conversions.to_string(),
            optional(r.rate),
            sig17(r.alpha),
            sig17(r.beta),
            sig17(r.mean),
            sig17(r.ci_low),
            sig17(r.ci_high),
            optional(r.p_best),
            optional(r.expected_loss),
            optional(r.weight_prev),
            optional(r.weight_new),
            optional(r.lift_vs_holdout),
            optional(r.lift_ci_low),
            optional(r.lift_ci_high),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

/// The allocation history: one row per run and arm, oldest run first.
pub fn history(rows: &[HistoryRow]) -> String {
    let mut out =
        String::from("run_id,as_of,seed,context,arm_id,role,status,variant,weight,p_best,mean,ci_low,ci_high,change,srm_p_value\n");
    for h in rows {
        let fields = [
            field(&h.run_id),
            h.as_of.rfc3339(),
            h.seed.to_string(),
            field(h.context.as_str()),
            field(&h.arm_id.to_string()),
            field(h.role.as_str()),
            field(h.status.as_str()),
            field(&h.variant),
            optional(h.weight),
            optional(h.p_best),
            sig17(h.mean),
            sig17(h.ci_low),
            sig17(h.ci_high),
            field(h.change.as_deref().unwrap_or("")),
            optional(h.srm_p_value),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

/// Reads a CSV file written by levered (a header, one record per line, fields quoted when needed)
/// into rows of column name → value.
pub fn parse(text: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut lines = text.lines().filter(|l| !l.is_empty());
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let header = split(header);
    lines
        .map(|line| header.iter().cloned().zip(split(line)).collect())
        .collect()
}

fn split(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().expect("one field at least").push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => fields.last_mut().expect("one field at least").push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seventeen_digits_round_trip() {
        for x in [0.1, 1.0 / 3.0, 0.617_216_604_52, 1.0, 2.5e-7, 123.456] {
            let text = sig17(x);
            assert!(!text.contains('e'), "{text}");
            assert_eq!(text.parse::<f64>().unwrap(), x, "{text}");
        }
        assert_eq!(sig17(0.0), "0");
    }

    #[test]
    fn quotes_fields_that_need_it() {
        assert_eq!(
            field(r#"{"a":"b","c":"d"}"#),
            r#""{""a"":""b"",""c"":""d""}""#
        );
        assert_eq!(field("plain"), "plain");
    }
}
