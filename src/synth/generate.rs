//! A deterministic synthetic warehouse with known true rates: the bundled example (`fixtures/`) and
//! the benchmark's data come from here. The same seed and sizes give the same rows.

use std::path::Path;

use anyhow::Context;
use chrono::{TimeZone, Utc};
use duckdb::types::{TimeUnit, Value};
use duckdb::{params, Connection};
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, LogNormal};

/// The end of the generated traffic: 2026-01-08T00:00:00Z.
pub const END: &str = "2026-01-08T00:00:00Z";

/// `hero`: headline × cta_text; true signup probability per visit, in level order.
pub const HERO_HEADLINES: [&str; 5] = [
    "Ship faster",
    "Built for teams",
    "Save hours",
    "Own your data",
    "Open source",
];
pub const HERO_CTAS: [&str; 2] = ["Start free", "Book a demo"];
/// Signup rate of (headline, cta): the baseline converts at 3%, "Save hours" + "Start free" at 6%.
pub fn hero_rate(headline: usize, cta: usize) -> f64 {
    const HEADLINE: [f64; 5] = [0.030, 0.034, 0.050, 0.028, 0.032];
    const CTA: [f64; 2] = [1.0, 0.8];
    HEADLINE[headline] * CTA[cta] * if (headline, cta) == (2, 0) { 1.2 } else { 1.0 }
}

/// `checkout`: flow × price_display; purchase probability and mean order value per visit.
pub const CHECKOUT_FLOWS: [&str; 2] = ["multi_step", "one_page"];
pub const CHECKOUT_PRICES: [&str; 2] = ["monthly", "annual"];
pub fn checkout_truth(flow: usize, price: usize) -> (f64, f64) {
    let rate = [0.08, 0.10][flow];
    let order = [40.0, 55.0][price];
    (rate, order)
}

pub(crate) const COUNTRIES: [&str; 4] = ["US", "DE", "FR", "BR"];
pub(crate) const DEVICES: [&str; 2] = ["desktop", "mobile"];

/// Copies in-memory tables into `out/<table>.parquet`.
pub(crate) fn write_parquet(
    connection: &Connection,
    out: &Path,
    tables: &[&str],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for table in tables {
        let path = out.join(format!("{table}.parquet"));
        let target = path.display().to_string().replace('\'', "''");
        connection
            .execute_batch(&format!(
                "COPY (SELECT * FROM {table}) TO '{target}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 100000)"
            ))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

struct Tables {
    connection: Connection,
}

impl Tables {
    fn new() -> anyhow::Result<Tables> {
        let connection = Connection::open_in_memory()?;
        connection.execute_batch(
            "SET threads = 1;
             CREATE TABLE exposures (anonymous_id VARCHAR, timestamp TIMESTAMP, optimization_id VARCHAR,
                                     variant VARCHAR, context VARCHAR);
             CREATE TABLE signups (anonymous_id VARCHAR, created_at TIMESTAMP);
             CREATE TABLE orders (anonymous_id VARCHAR, ordered_at TIMESTAMP, revenue DOUBLE);",
        )?;
        Ok(Tables { connection })
    }
}

pub(crate) fn ts(us: i64) -> Value {
    Value::Timestamp(TimeUnit::Microsecond, us)
}

pub(crate) fn variant(pairs: &[(&str, &str)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// Writes `exposures.parquet`, `signups.parquet` and `orders.parquet` into `out`.
pub fn write_example_warehouse(
    out: &Path,
    visits: u64,
    days: u32,
    seed: u64,
) -> anyhow::Result<String> {
    let end_us = Utc
        .with_ymd_and_hms(2026, 1, 8, 0, 0, 0)
        .single()
        .expect("a valid date")
        .timestamp_micros();
    let span_us = i64::from(days) * 86_400_000_000;
    let start_us = end_us - span_us;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let visitors = (visits / 3).max(1);
    let delay = Exp::new(1.0 / (3.0 * 3600.0)).expect("a positive rate");
    let order_noise = LogNormal::new(0.0, 0.5).expect("a positive sigma");
    let tables = Tables::new()?;
    let mut times: Vec<i64> = (0..visits)
        .map(|_| start_us + rng.random_range(0..span_us))
        .collect();
    times.sort_unstable();
    {
        let mut exposures = tables.connection.appender("exposures")?;
        let mut signups = tables.connection.appender("signups")?;
        let mut orders = tables.connection.appender("orders")?;
        for (i, &t) in times.iter().enumerate() {
            let visitor = format!("v{:06}", rng.random_range(0..visitors));
            let context = variant(&[
                ("country", COUNTRIES[rng.random_range(0..COUNTRIES.len())]),
                ("device", DEVICES[rng.random_range(0..DEVICES.len())]),
            ]);
            // Every visit sees the hero section; the excluded combination is never served.
            let (headline, cta) = loop {
                let pick = (rng.random_range(0..5), rng.random_range(0..2));
                if pick != (4, 1) {
                    break pick;
                }
            };
            let hero = variant(&[
                ("headline", HERO_HEADLINES[headline]),
                ("cta_text", HERO_CTAS[cta]),
            ]);
            // A few rows the aggregation must count as unmatched, never drop silently.
            let (id, hero) = match i % 1000 {
                7 => (Value::Null, hero),
                11 => (
                    Value::Text(visitor.clone()),
                    variant(&[("headline", "Retired headline"), ("cta_text", "Start free")]),
                ),
                _ => (Value::Text(visitor.clone()), hero),
            };
            exposures.append_row(params![id, ts(t), "hero", hero, context])?;
            if rng.random_bool(hero_rate(headline, cta)) {
                let at = t + delay_us(&delay, &mut rng);
                if at < end_us {
                    signups.append_row(params![visitor, ts(at)])?;
                }
            }
            if rng.random_bool(0.3) {
                let (flow, price) = (rng.random_range(0..2), rng.random_range(0..2));
                let checkout = variant(&[
                    ("flow", CHECKOUT_FLOWS[flow]),
                    ("price_display", CHECKOUT_PRICES[price]),
                ]);
                let at = t + rng.random_range(0..60_000_000);
                exposures.append_row(params![visitor, ts(at), "checkout", checkout, context])?;
                let (rate, mean) = checkout_truth(flow, price);
                if rng.random_bool(rate) {
                    // LogNormal(0, 0.5) has mean e^0.125; dividing by it keeps the arm's mean order value.
                    let value = mean * order_noise.sample(&mut rng) / 0.125f64.exp();
                    let paid_at = at + delay_us(&delay, &mut rng);
                    if paid_at < end_us {
                        orders.append_row(params![
                            visitor,
                            ts(paid_at),
                            (value * 100.0).round() / 100.0
                        ])?;
                    }
                }
            }
        }
        exposures.flush()?;
        signups.flush()?;
        orders.flush()?;
    }
    write_parquet(&tables.connection, out, &["exposures", "signups", "orders"])?;
    let count = |table: &str| -> anyhow::Result<i64> {
        Ok(tables
            .connection
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?)
    };
    Ok(format!(
        "wrote {}: {} exposures, {} signups, {} orders ({} days ending {END}, seed {seed})",
        out.display(),
        count("exposures")?,
        count("signups")?,
        count("orders")?,
        days
    ))
}

/// A conversion delay: exponential with a 3-hour mean, under the 24-hour window.
pub(crate) fn delay_us<R: Rng>(delay: &Exp<f64>, rng: &mut R) -> i64 {
    (delay.sample(rng).min(23.0 * 3600.0) * 1e6) as i64
}
