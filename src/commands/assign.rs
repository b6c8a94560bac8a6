//! `levered assign`: which row of an optimization's `allocation.csv` a visitor is served
//! (docs/design.md §5).

use anyhow::{anyhow, Context};
use chrono::Utc;

use crate::cli::AssignArgs;
use crate::domain::{ArmId, ContextKey, Role};
use crate::exit::{ExitStatus, Failure};
use crate::output::Printer;

use super::settings::{context_factors, load_config, parse_time};

pub(super) fn assign_command(args: AssignArgs, printer: &Printer) -> Result<ExitStatus, Failure> {
    use crate::allocation::{assign, context_key};
    let config = load_config(args.config)?;
    let optimization = config
        .select(std::slice::from_ref(&args.optimization))
        .map_err(Failure::usage)?[0];
    let at = args
        .at
        .as_deref()
        .map(parse_time)
        .transpose()?
        .unwrap_or_else(Utc::now);
    let factors = &optimization.context_factors;
    let mut pairs = Vec::new();
    for given in &args.context {
        let Some((factor, value)) = given.split_once('=') else {
            return Err(Failure::usage(format!(
                "--context `{given}` is not FACTOR=VALUE\n  hint: e.g. --context country=US"
            )));
        };
        if !factors.iter().any(|f| f == factor) {
            return Err(Failure::usage(format!(
                "`{factor}` is not a context factor of `{}`\n  hint: its context factors: {}",
                optimization.name,
                context_factors(optimization)
            )));
        }
        pairs.push((factor.to_string(), value.to_string()));
    }
    let path = config
        .output_dir
        .join(&optimization.name)
        .join("allocation.csv");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Failure::data(anyhow!(
            "cannot read {}: {e}\n  hint: run levered train first",
            path.display()
        ))
    })?;
    let rows = serving_rows(&text).map_err(|why| {
        Failure::data(anyhow!(
            "{}: {why:#}\n  hint: run levered train to rewrite it",
            path.display()
        ))
    })?;
    let batch = (optimization.model.batch.micros() / 1_000_000).max(1);
    let batch_start = at.timestamp().div_euclid(batch) * batch;
    let key = context_key(factors, &pairs);
    let served =
        assign(&rows, &optimization.name, &args.unit, &key, batch_start).ok_or_else(|| {
            Failure::data(anyhow!(
                "{} has no row for context `{key}` nor `*`",
                path.display()
            ))
        })?;
    let mut json = serde_json::json!({"optimization": optimization.name, "unit": args.unit});
    if let (Some(object), serde_json::Value::Object(fields)) = (
        json.as_object_mut(),
        serde_json::to_value(&served).unwrap_or_default(),
    ) {
        object.extend(fields);
    }
    printer.json(&json);
    printer.result(&format!(
        "{} {} (weight {}, context {}, batch from {})\n",
        if served.holdout {
            "holdout".to_string()
        } else {
            format!("arm {}", served.arm_id)
        },
        served.variant,
        crate::report::number(served.weight),
        served.context,
        crate::time::Instant::from_micros(served.batch_start * 1_000_000).rfc3339()
    ));
    Ok(ExitStatus::Success)
}

/// The rows of an `allocation.csv` as the serving side reads them.
fn serving_rows(text: &str) -> anyhow::Result<Vec<crate::allocation::ServingRow>> {
    crate::report::parse_csv(text)
        .context("not CSV with a header")?
        .into_iter()
        .enumerate()
        .map(|(i, row)| {
            let record = i + 1;
            let get = |column: &str| {
                row.get(column)
                    .map(String::as_str)
                    .ok_or_else(|| anyhow!("record {record} has no `{column}` column"))
            };
            let weight = get("weight")?;
            Ok(crate::allocation::ServingRow {
                context: ContextKey::new(get("context")?),
                arm_id: ArmId::parse(get("arm_id")?).with_context(|| format!("record {record}"))?,
                role: Role::parse(get("role")?).with_context(|| format!("record {record}"))?,
                variant: get("variant")?.to_string(),
                weight: weight.parse().map_err(|_| {
                    anyhow!("record {record}: the weight `{weight}` is not a number")
                })?,
            })
        })
        .collect()
}
