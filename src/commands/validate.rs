//! `levered validate`: checks the definitions (and, with the warehouse, their SQL) for CI.

use chrono::Utc;

use crate::time::Instant;

use crate::cli::{ValidateArgs, ValidateFormat};
use crate::config;
use crate::exit::{ExitStatus, Failure};
use crate::output::Printer;

use super::settings::{config_path, parse_time};

pub(super) fn validate_command(
    args: ValidateArgs,
    printer: &Printer,
) -> Result<ExitStatus, Failure> {
    use crate::validate;
    let as_of = args
        .as_of
        .as_deref()
        .map(parse_time)
        .transpose()?
        .unwrap_or_else(Utc::now);
    let path = config_path(args.config)?;
    let (validation, unreachable) = match config::load(&path) {
        Err(error) => (validate::from_config_error(&error), None),
        Ok(config) => {
            let selected = config.select(&args.optimizations).map_err(Failure::usage)?;
            let mut validation = validate::static_checks(&config);
            let mut unreachable = None;
            if !args.offline {
                match crate::warehouse::open(&config.warehouse) {
                    Err(error) => {
                        validation.unreachable(&config, &error.to_string());
                        unreachable = Some(error);
                    }
                    Ok(engine) => {
                        let sample = args.sample.then(|| Instant::from_utc(as_of));
                        let found =
                            validate::engine_checks(&config, engine.as_ref(), &selected, sample);
                        validation.findings.extend(found.findings);
                        validation.samples = found.samples;
                    }
                }
            }
            (validation, unreachable)
        }
    };
    let file = path.display().to_string();
    match args.format {
        ValidateFormat::Text => {
            if !(printer.quiet && validation.findings.is_empty()) {
                printer.out(&validate::render_text(&file, &validation));
            }
        }
        ValidateFormat::Json => printer.json(&serde_json::json!({
            "file": file,
            "valid": validation.errors() == 0 && unreachable.is_none(),
            "errors": validation.errors(),
            "findings": validation.findings,
            "samples": validation.samples,
            "warehouse_error": unreachable.as_ref().map(ToString::to_string),
        })),
        ValidateFormat::Github => printer.out(&validate::render_github(&file, &validation)),
    }
    Ok(if unreachable.is_some() {
        ExitStatus::Data
    } else if validation.errors() > 0 {
        ExitStatus::InvalidDefinition
    } else {
        ExitStatus::Success
    })
}
