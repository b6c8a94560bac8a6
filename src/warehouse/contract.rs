//! The warehouse contract (docs/design.md §1.9, §1.10): the columns and kinds an exposure
//! source and a metric's SQL must return. `validate` reports a breach as a finding at the YAML key;
//! `train` refuses to aggregate a source that breaches it, naming the source and the column.

use crate::config::{MetricKind, Optimization};

use super::ColumnKind;

/// One column the contract requires.
#[derive(Debug, Clone, PartialEq)]
pub struct Required {
    pub column: String,
    pub kinds: &'static [ColumnKind],
    /// What the column is for, e.g. "the exposure time".
    pub role: &'static str,
    /// The `exposures.columns` key that maps the column of an exposure source; `None` for a
    /// metric's column, whose name is fixed.
    pub mapped_by: Option<&'static str>,
}

/// How a relation's columns breach the contract.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Breach {
    #[error("column `{column}` ({role}) is missing; the SQL returns: {}", found.join(", "))]
    Missing {
        column: String,
        role: &'static str,
        found: Vec<String>,
        mapped_by: Option<&'static str>,
    },
    #[error(
        "column `{column}` is {}, but {role} must be {}",
        describe(found),
        wanted(kinds)
    )]
    WrongKind {
        column: String,
        role: &'static str,
        found: ColumnKind,
        kinds: &'static [ColumnKind],
    },
}

impl Breach {
    /// What fixes it.
    pub fn hint(&self) -> String {
        match self {
            Breach::Missing {
                column,
                mapped_by: None,
                ..
            } => {
                format!("select it under this name, e.g. `created_at AS {column}`")
            }
            Breach::Missing {
                column,
                mapped_by: Some(key),
                ..
            } => format!(
                "name the column `{column}`, or give its name under exposures.columns.{key}"
            ),
            Breach::WrongKind { column, kinds, .. } => match kinds.first() {
                Some(ColumnKind::Timestamp) => {
                    format!("cast it in the SQL, e.g. CAST({column} AS TIMESTAMP)")
                }
                Some(ColumnKind::Numeric) => {
                    format!("cast it in the SQL, e.g. CAST({column} AS DOUBLE)")
                }
                Some(ColumnKind::Boolean) => {
                    format!("cast it in the SQL, e.g. CAST({column} AS BOOLEAN)")
                }
                _ => format!("cast it in the SQL, e.g. CAST({column} AS VARCHAR)"),
            },
        }
    }
}

const TEXT: &[ColumnKind] = &[ColumnKind::Text];
const TIME: &[ColumnKind] = &[ColumnKind::Timestamp];
const NUMBER: &[ColumnKind] = &[ColumnKind::Numeric];
const BOOLEAN: &[ColumnKind] = &[ColumnKind::Boolean];

fn required(column: &str, kinds: &'static [ColumnKind], role: &'static str) -> Required {
    Required {
        column: column.to_string(),
        kinds,
        role,
        mapped_by: None,
    }
}

/// An exposure column, named `column` and mapped by `exposures.columns.{key}`.
fn exposure(
    key: &'static str,
    column: &str,
    kinds: &'static [ColumnKind],
    role: &'static str,
) -> Required {
    Required {
        mapped_by: Some(key),
        ..required(column, kinds, role)
    }
}

/// The columns of an optimization's exposure source.
pub fn exposure_columns(optimization: &Optimization) -> Vec<Required> {
    let c = &optimization.exposures.columns;
    let mut columns = vec![
        exposure("anonymous_id", &c.anonymous_id, TEXT, "the visitor id"),
        exposure("timestamp", &c.timestamp, TIME, "the exposure time"),
        exposure(
            "optimization_id",
            &c.optimization_id,
            TEXT,
            "the optimization id",
        ),
        exposure("variant", &c.variant, TEXT, "the variant JSON"),
    ];
    if !optimization.context_factors.is_empty() {
        columns.push(exposure(
            "context",
            &c.context,
            TEXT,
            "the context JSON of a contextual model",
        ));
    }
    if optimization.model.holdout.is_some() {
        columns.push(exposure(
            "holdout",
            &c.holdout,
            BOOLEAN,
            "the holdout flag of a model with a holdout",
        ));
    }
    columns
}

/// The columns of a metric's SQL.
pub fn metric_columns(kind: MetricKind) -> Vec<Required> {
    let mut columns = vec![
        required("anonymous_id", TEXT, "the visitor id"),
        required("timestamp", TIME, "the reward time"),
    ];
    if kind == MetricKind::Numeric {
        columns.push(required(
            "value",
            NUMBER,
            "the reward value of a numeric metric",
        ));
    }
    columns
}

/// Every breach of `required` by a relation that returns `columns` (names compare case-insensitively).
pub fn check(columns: &[(String, ColumnKind)], required: &[Required]) -> Vec<Breach> {
    required
        .iter()
        .filter_map(|r| {
            match columns
                .iter()
                .find(|(c, _)| c.eq_ignore_ascii_case(&r.column))
            {
                None => Some(Breach::Missing {
                    column: r.column.clone(),
                    role: r.role,
                    found: columns.iter().map(|(c, _)| c.clone()).collect(),
                    mapped_by: r.mapped_by,
                }),
                Some((_, kind)) if !r.kinds.contains(kind) => Some(Breach::WrongKind {
                    column: r.column.clone(),
                    role: r.role,
                    found: kind.clone(),
                    kinds: r.kinds,
                }),
                Some(_) => None,
            }
        })
        .collect()
}

fn describe(kind: &ColumnKind) -> String {
    match kind {
        ColumnKind::Text => "text".into(),
        ColumnKind::Timestamp => "a timestamp".into(),
        ColumnKind::Numeric => "numeric".into(),
        ColumnKind::Boolean => "boolean".into(),
        ColumnKind::Other(t) => t.to_lowercase(),
    }
}

fn wanted(kinds: &[ColumnKind]) -> String {
    kinds.iter().map(describe).collect::<Vec<_>>().join(" or ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaches_name_the_column_and_hint_at_its_own_type() {
        let columns = vec![
            ("ANONYMOUS_ID".to_string(), ColumnKind::Numeric),
            ("value".to_string(), ColumnKind::Numeric),
        ];
        let breaches = check(&columns, &metric_columns(MetricKind::Numeric));
        assert_eq!(breaches.len(), 2, "{breaches:?}");
        assert_eq!(
            breaches[0].to_string(),
            "column `anonymous_id` is numeric, but the visitor id must be text"
        );
        assert!(
            breaches[0].hint().contains("AS VARCHAR"),
            "{}",
            breaches[0].hint()
        );
        assert_eq!(
            breaches[1].to_string(),
            "column `timestamp` (the reward time) is missing; the SQL returns: ANONYMOUS_ID, value"
        );
        assert_eq!(
            breaches[1].hint(),
            "select it under this name, e.g. `created_at AS timestamp`"
        );
    }

    #[test]
    fn a_missing_exposure_column_is_told_how_to_map_it() {
        let required = [exposure("timestamp", "ts", TIME, "the exposure time")];
        let breaches = check(&[("seen_at".to_string(), ColumnKind::Timestamp)], &required);
        assert_eq!(
            breaches[0].hint(),
            "name the column `ts`, or give its name under exposures.columns.timestamp"
        );
    }
}
