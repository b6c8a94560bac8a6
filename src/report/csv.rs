//! CSV renderings of the allocation and the report. Numbers are the shortest text of their double,
//! so that a reader recovers the exact weights.

use std::collections::BTreeMap;

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
/// `header` and `rows` as CSV (RFC 4180: fields quoted when they hold `,`, `"` or a line break),
/// one record per line.
fn table(header: &str, rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let records = std::iter::once(header.split(',').map(str::to_string).collect()).chain(rows);
    for record in records {
        // Writing to memory fails only when out of memory.
        let _ = writer.write_record(&record);
    }
    let bytes = writer.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

pub const ALLOCATION_HEADER: &str =
    "optimization,run_id,trained_at,context,arm_id,role,variant,weight,status";

pub fn allocation(rows: &[AllocationRow]) -> String {
    table(
        ALLOCATION_HEADER,
        rows.iter().map(|r| {
            vec![
                r.optimization.to_string(),
                r.run_id.to_string(),
                r.trained_at.to_string(),
                r.context.as_str().to_string(),
                r.arm_id.to_string(),
                r.role.as_str().to_string(),
                r.variant.to_string(),
                number(r.weight),
                r.status.as_str().to_string(),
            ]
        }),
    )
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

/// The report rows; with guardrails (docs/design.md §3.21), six columns per guardrail metric `m`
/// follow: `guardrail_m_conversions`, `_mean`, `_ci_low`, `_ci_high`, `_p_harm`, `_harmful`
/// (blank for the holdout, and `p_harm` for the baseline).
pub fn report(origin: &Origin<'_>, rows: &[ArmReport]) -> String {
    let guardrails: Vec<&str> = rows
        .iter()
        .find(|r| !r.guardrails.is_empty())
        .map_or_else(Vec::new, |r| {
            r.guardrails.iter().map(|g| g.metric.as_str()).collect()
        });
    let mut header = REPORT_HEADER.to_string();
    for metric in &guardrails {
        for column in GUARDRAIL_COLUMNS {
            header.push_str(&format!(",guardrail_{metric}_{column}"));
        }
    }
    table(
        &header,
        rows.iter().map(|r| {
            let mut record = vec![
                origin.optimization.to_string(),
                origin.run_id.to_string(),
                origin.as_of.to_string(),
                origin.metric.to_string(),
                r.context.as_str().to_string(),
                r.arm_id.to_string(),
                r.role.as_str().to_string(),
                r.variant.to_string(),
                r.status.as_str().to_string(),
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
            for metric in &guardrails {
                match r.guardrails.iter().find(|g| g.metric == *metric) {
                    Some(g) => record.extend([
                        g.conversions.to_string(),
                        number(g.mean),
                        number(g.ci_low),
                        number(g.ci_high),
                        optional(g.p_harm),
                        g.harmful.to_string(),
                    ]),
                    None => record.extend(GUARDRAIL_COLUMNS.map(|_| String::new())),
                }
            }
            record
        }),
    )
}

/// The report's columns of each guardrail metric.
const GUARDRAIL_COLUMNS: [&str; 6] = [
    "conversions",
    "mean",
    "ci_low",
    "ci_high",
    "p_harm",
    "harmful",
];

/// The allocation history: one row per run and arm, oldest run first.
pub fn history(rows: &[HistoryRow]) -> String {
    table(
        "run_id,as_of,seed,context,arm_id,role,status,variant,weight,p_best,mean,ci_low,ci_high,change,srm_p_value",
        rows.iter().map(|h| {
            vec![
            h.run_id.to_string(),
            h.as_of.rfc3339(),
            h.seed.to_string(),
            h.context.as_str().to_string(),
            h.arm_id.to_string(),
            h.role.as_str().to_string(),
            h.status.as_str().to_string(),
            h.variant.to_string(),
            optional(h.weight),
            optional(h.p_best),
            number(h.mean),
            number(h.ci_low),
            number(h.ci_high),
            h.change.clone().unwrap_or_default(),
            optional(h.srm_p_value),
            ]
        }),
    )
}

/// Reads CSV (a header, then records; RFC 4180 quoting) into rows of column name → value.
pub fn parse(text: &str) -> Result<Vec<BTreeMap<String, String>>, csv::Error> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers()?.iter().map(str::to_string).collect();
    reader
        .records()
        .map(|record| {
            Ok(header
                .iter()
                .cloned()
                .zip(record?.iter().map(str::to_string))
                .collect())
        })
        .collect()
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
    fn quotes_fields_that_need_it_and_reads_them_back() {
        let text = table(
            "a,b,c",
            [vec![
                r#"{"a":"b","c":"d"}"#.to_string(),
                "plain".to_string(),
                "two\nlines".to_string(),
            ]],
        );
        assert_eq!(
            text,
            "a,b,c\n\"{\"\"a\"\":\"\"b\"\",\"\"c\"\":\"\"d\"\"}\",plain,\"two\nlines\"\n"
        );
        let rows = parse(&text).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["a"], r#"{"a":"b","c":"d"}"#);
        assert_eq!(rows[0]["c"], "two\nlines");
        assert!(
            parse("a,b\n1,2,3\n").is_err(),
            "a record longer than the header"
        );
    }
}
