//! CSV renderings of the allocation and the report. Numbers are the shortest text of their double,
//! so that a reader recovers the exact weights.

use super::model::HistoryRow;
use super::model::{AllocationRow, ArmReport};

/// `x` as the shortest decimal text that reads back as the same double: plain notation from 1e-6
/// up to 1e21 (`175`, `0.25`, `0.010000000018816043`), else scientific (`1.0700628854089555e-9`);
/// empty for NaN.
pub fn number(x: f64) -> String {
    if x.is_nan() {
        return String::new();
    }
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let scientific = format!("{x:e}");
    let exponent: i32 = scientific
        .rsplit_once('e')
        .and_then(|(_, e)| e.parse().ok())
        .unwrap_or(0);
    if (-6..21).contains(&exponent) {
        format!("{x}")
    } else {
        scientific
    }
}

fn optional(x: Option<f64>) -> String {
    x.map(number).unwrap_or_default()
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
            number(r.weight),
            field(r.status.as_str()),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

pub const REPORT_HEADER: &str = "optimization,run_id,as_of,metric,context,arm_id,role,variant,status,units,conversions,rate,alpha,beta,mean,ci_low,ci_high,p_best,expected_loss,weight_prev,weight_new,lift_vs_holdout,lift_ci_low,lift_ci_high";

/// Where report rows come from: each row of `report.csv` names its run, so that files from
/// `runs/` can be concatenated.
pub struct Origin<'a> {
    pub optimization: &'a str,
    pub run_id: &'a str,
    /// RFC 3339.
    pub as_of: &'a str,
    pub metric: &'a str,
}

pub fn report(origin: &Origin<'_>, rows: &[ArmReport]) -> String {
    let mut out = format!("{REPORT_HEADER}\n");
    for r in rows {
        let fields = [
            field(origin.optimization),
            field(origin.run_id),
            field(origin.as_of),
            field(origin.metric),
            field(r.context.as_str()),
            field(&r.arm_id.to_string()),
            field(r.role.as_str()),
            field(&r.variant),
            field(r.status.as_str()),
            r.units.to_string(),
            r.conversions.to_string(),
            optional(r.rate),
            number(r.alpha),
            number(r.beta),
            number(r.mean),
            number(r.ci_low),
            number(r.ci_high),
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
            number(h.mean),
            number(h.ci_low),
            number(h.ci_high),
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
    fn numbers_are_the_shortest_text_that_reads_back_as_the_same_double() {
        for (x, text) in [
            (175.0, "175"),
            (0.25, "0.25"),
            (1.0700628854089555e-9, "1.0700628854089555e-9"),
            (2.5e-7, "2.5e-7"),
            (0.000001, "0.000001"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e21, "1e21"),
            (-3.5, "-3.5"),
            (0.0, "0"),
        ] {
            assert_eq!(number(x), text);
        }
        let mut state: u64 = 7;
        for i in 0..2_000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let mantissa = 1.0 + (state >> 11) as f64 / (1u64 << 53) as f64 * 9.0;
            let x = mantissa * 10f64.powi(i % 46 - 20);
            let text = number(x);
            assert_eq!(text.parse::<f64>().unwrap(), x, "{text}");
            let digits = text.split('e').next().unwrap();
            assert!(
                !digits.contains('.') || !digits.ends_with('0'),
                "padded: {text}"
            );
        }
        assert_eq!(number(f64::NAN), "");
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
