//! The benchmark's warehouse: one optimization `bench` with 10 arms over 30 days, repeat visitors,
//! contexts, a holdout (a tenth of the visitors, always shown the baseline `a0`), delayed conversions
//! (about one per ten exposures) and a few unmatched rows.

use std::path::Path;

use duckdb::{params, Connection};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::Exp;

use super::generate::{delay_us, ts, variant, write_parquet, COUNTRIES, DEVICES};

/// The levels of the benchmark's one factor, `arm`.
pub const BENCH_ARMS: [&str; 10] = ["a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9"];

/// The true conversion rate per exposure of arm `i`: from 8% to 12.5%.
pub fn bench_rate(arm: usize) -> f64 {
    0.08 + 0.005 * arm as f64
}

/// Writes `exposures.parquet` and `signups.parquet` with `exposures` rows over `days` days ending at
/// `end_us`.
pub fn write_bench_warehouse(
    out: &Path,
    exposures: u64,
    days: u32,
    end_us: i64,
    seed: u64,
) -> anyhow::Result<String> {
    let connection = Connection::open_in_memory()?;
    connection.execute_batch(
        "SET threads = 1;
         CREATE TABLE exposures (anonymous_id VARCHAR, timestamp TIMESTAMP, optimization_id VARCHAR,
                                 variant VARCHAR, context VARCHAR, holdout BOOLEAN);
         CREATE TABLE signups (anonymous_id VARCHAR, created_at TIMESTAMP);",
    )?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let span_us = i64::from(days) * 86_400_000_000;
    let start_us = end_us - span_us;
    let visitors = (exposures / 4).max(1);
    let delay = Exp::new(1.0 / (3.0 * 3600.0)).expect("a positive rate");
    let variants: Vec<String> = BENCH_ARMS.iter().map(|a| variant(&[("arm", a)])).collect();
    let unknown = variant(&[("arm", "retired")]);
    let contexts: Vec<String> = COUNTRIES
        .iter()
        .flat_map(|c| {
            DEVICES
                .iter()
                .map(move |d| variant(&[("country", c), ("device", d)]))
        })
        .collect();
    let mut times: Vec<i64> = (0..exposures)
        .map(|_| start_us + rng.random_range(0..span_us))
        .collect();
    times.sort_unstable();
    let mut signups_written = 0u64;
    {
        let mut exposure_rows = connection.appender("exposures")?;
        let mut signup_rows = connection.appender("signups")?;
        for (i, &t) in times.iter().enumerate() {
            let number = rng.random_range(0..visitors);
            let visitor = format!("u{number:09}");
            let holdout = number % 10 == 0;
            let arm = if holdout {
                0
            } else {
                rng.random_range(0..BENCH_ARMS.len())
            };
            let context = &contexts[rng.random_range(0..contexts.len())];
            let shown = if i % 997 == 0 {
                &unknown
            } else {
                &variants[arm]
            };
            exposure_rows.append_row(params![visitor, ts(t), "bench", shown, context, holdout])?;
            if rng.random_bool(bench_rate(arm)) {
                let at = t + delay_us(&delay, &mut rng);
                if at < end_us {
                    signup_rows.append_row(params![visitor, ts(at)])?;
                    signups_written += 1;
                }
            }
        }
        exposure_rows.flush()?;
        signup_rows.flush()?;
    }
    write_parquet(&connection, out, &["exposures", "signups"])?;
    Ok(format!(
        "wrote {}: {exposures} exposures, {signups_written} signups over {days} days (seed {seed})",
        out.display()
    ))
}
