//! Split scans (docs/design.md §2.14; figures in docs/performance.md). The aggregation is per
//! visitor, so a scan can run in parts whose aggregates sum to those of the whole scan, each part
//! holding only its own units in memory:
//! - under `unit: visitor_batch`, by time: each part counts the units of a range of batches, with
//!   (under `last_touch`) the rows of one window after it as rivals for rewards, or (under
//!   `first_touch`) the units of one window before it, so each exposure row is read about once;
//! - under `unit: visitor` (a visitor's unit is their first exposure ever), by a hash of
//!   `anonymous_id`: each part reads every row and keeps the visitors of its hash.
//!
//! The number of parts is `warehouse.scan_parts`, or what the engine's memory for a part allows:
//! `warehouse.memory_limit` on the embedded engine, one executor's memory on Spark.

use crate::config::{Touch, Unit};
use crate::time::{Instant, Span};

use super::scan::ScanPlan;
use super::sql::Shape;

/// How an engine splits its scans.
#[derive(Debug, Clone, Copy)]
pub struct Split {
    /// `warehouse.scan_parts`.
    pub parts: Option<u32>,
    /// The memory a part may take when levered chooses the parts.
    pub memory: u64,
}

impl Split {
    /// Whether the parts depend on the data, which then has to be counted first.
    pub fn counts_rows(&self) -> bool {
        self.parts.is_none_or(|parts| parts > 1)
    }
}

/// The peak memory of a part per exposure row it deduplicates, the engine's own memory included,
/// for visitor ids the engine keeps inline (at most 12 bytes): 130–145 bytes were measured at 100M
/// rows in 10 and 16 parts (docs/performance.md).
const BYTES_PER_ROW: f64 = 150.0;

/// The peak memory of a part per byte of a visitor id beyond what the engine keeps inline: the
/// part holds about four copies of each id (docs/performance.md: 32-byte ids took ~115 bytes a
/// row more than 10-byte ones).
const BYTES_PER_ID_BYTE: f64 = 4.0;

/// The memory a part may take on the embedded engine: `warehouse.memory_limit`, or 1 GiB when it
/// is not set or is not a size (such as a percentage).
pub fn duckdb_part_memory(memory_limit: Option<&str>) -> u64 {
    memory_limit.and_then(engine_memory).unwrap_or(1 << 30)
}

/// The memory a part may take on Spark: one executor's, `spark.executor.memory`, or Spark's
/// default 1g when the server does not state it or states what levered cannot read.
#[cfg_attr(not(feature = "spark"), allow(dead_code))] // the Spark engine's; tested in every build
pub fn spark_part_memory(executor_memory: Option<&str>) -> u64 {
    executor_memory.and_then(jvm_memory).unwrap_or(1 << 30)
}

/// The bytes of a DuckDB memory setting such as `1500MB`, `2GiB` or `1 GB` (as DuckDB reads them:
/// KB, MB, GB, TB in powers of 1000, KiB, MiB, GiB, TiB in powers of 1024); `None` for any other
/// text, such as a percentage.
fn engine_memory(setting: &str) -> Option<u64> {
    let setting = setting.trim();
    let digits = setting
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(setting.len());
    let number: f64 = setting[..digits].parse().ok()?;
    let unit = setting[digits..].trim().to_ascii_lowercase();
    let scale: f64 = match unit.as_str() {
        "" | "b" | "byte" | "bytes" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024f64.powi(2),
        "gib" => 1024f64.powi(3),
        "tib" => 1024f64.powi(4),
        _ => return None,
    };
    Some((number * scale) as u64)
}

/// The bytes of a JVM memory string as Spark reads `spark.executor.memory`: a whole number with a
/// suffix `k`, `m`, `g`, `t`, `p` (or `kb` … `pb`, `b`), each a power of 1024, and a bare number
/// in MiB; `None` for any other text.
fn jvm_memory(setting: &str) -> Option<u64> {
    let setting = setting.trim().to_ascii_lowercase();
    let digits = setting
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(setting.len());
    let number: u64 = setting[..digits].parse().ok()?;
    let power = match &setting[digits..] {
        "b" => 0,
        "k" | "kb" => 1,
        "" | "m" | "mb" => 2,
        "g" | "gb" => 3,
        "t" | "tb" => 4,
        "p" | "pb" => 5,
        _ => return None,
    };
    number.checked_mul(1u64 << (10 * power))
}

/// One part of a scan: a hash part (`index` of `of`), or a time part (the batches from `from` to
/// `until`, each open-ended when `None`). The whole scan is `Part::WHOLE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub index: u32,
    pub of: u32,
    pub from: Option<Instant>,
    pub until: Option<Instant>,
}

/// The time bounds one part binds (see `sql::aggregation_in`).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub exposures_from: Instant,
    pub late_from: Instant,
    pub rivals_until: Instant,
    pub from_batch: Option<Instant>,
    /// The reward range, `$start`/`$end`.
    pub start: Instant,
    pub end: Instant,
    /// The rows whose problems the part counts.
    pub owned_from: Instant,
    pub owned_until: Instant,
}

impl Part {
    pub const WHOLE: Part = Part {
        index: 0,
        of: 1,
        from: None,
        until: None,
    };

    pub fn shape(&self, holdout_column: bool) -> Shape {
        Shape {
            holdout_column,
            hash_part: self.of > 1,
            later: self.from.is_some(),
            earlier: self.until.is_some(),
        }
    }

    /// The bounds of this part of `plan`. A time part reads its units' rows and, before the last
    /// part, under `last_touch` the rows of one window after it as rivals, and the rewards its
    /// units can take.
    pub fn bounds(&self, plan: &ScanPlan<'_>) -> Bounds {
        let sub = ScanPlan {
            from_batch: self.from.or(plan.from_batch),
            ..plan.clone()
        };
        let window = plan.window();
        // Under first_touch a later row never takes a reward from an earlier unit (the earliest
        // eligible unit wins), so the parts before the last need no rivals at all.
        let rival_window = match plan.optimization.attribution.touch {
            Touch::LastTouch => window,
            Touch::FirstTouch => Span::ZERO,
        };
        Bounds {
            exposures_from: sub.exposures_from(),
            late_from: self.until.unwrap_or_else(|| sub.late_from()),
            rivals_until: self.until.map_or(plan.as_of, |until| until + rival_window),
            from_batch: sub.from_batch,
            // A later part's rewards start no later than its first exposure, so that exposure
            // SQL that filters on `$start` keeps the whole batches the part deduplicates.
            start: match self.from {
                Some(_) => sub.rewards_from().min(sub.exposures_from()),
                None => sub.rewards_from(),
            },
            end: self
                .until
                .map_or(plan.as_of, |until| (until + window).min(plan.as_of)),
            owned_from: self.from.unwrap_or(Instant::BEGINNING),
            owned_until: self.until.unwrap_or(plan.as_of),
        }
    }
}

/// The parts of `plan`'s scan, from the exposure rows per batch (`(batch index, rows)`, in order)
/// and the mean bytes of a visitor id beyond the inline 12 (`sql/id_lengths.sql`).
pub fn parts(
    plan: &ScanPlan<'_>,
    split: Split,
    counts: &[(i64, i64)],
    id_heap_bytes: f64,
) -> Vec<Part> {
    let total: i64 = counts.iter().map(|(_, rows)| rows).sum();
    let wanted = split
        .parts
        .unwrap_or_else(|| parts_for(total, id_heap_bytes, split.memory));
    if wanted <= 1 {
        return vec![Part::WHOLE];
    }
    match plan.optimization.attribution.unit {
        Unit::Visitor => (0..wanted)
            .map(|index| Part {
                index,
                of: wanted,
                ..Part::WHOLE
            })
            .collect(),
        Unit::VisitorBatch => {
            let first = plan
                .from_batch
                .map_or(i64::MIN, |from| from.micros() / plan.batch().micros());
            let cuts = time_cuts(counts, wanted, first, plan.batch());
            let mut bounds = vec![None];
            bounds.extend(cuts.into_iter().map(Some));
            bounds.push(None);
            bounds
                .windows(2)
                .map(|pair| Part {
                    from: pair[0],
                    until: pair[1],
                    ..Part::WHOLE
                })
                .collect()
        }
    }
}

/// The number of parts for a scan that deduplicates `rows` exposure rows whose visitor ids take
/// `id_heap_bytes` beyond the inline ones, so that each part takes at most `memory` bytes.
fn parts_for(rows: i64, id_heap_bytes: f64, memory: u64) -> u32 {
    let per_row = BYTES_PER_ROW + BYTES_PER_ID_BYTE * id_heap_bytes.max(0.0);
    let parts = (rows.max(0) as f64 * per_row / memory.max(1) as f64).ceil();
    parts.clamp(1.0, f64::from(crate::config::MAX_SCAN_PARTS)) as u32
}

/// The batch starts that cut the batches into `parts` ranges of about equal rows: the first batch
/// at which the rows before it reach each `k / parts` of the total. Only batches after `first` (the
/// first batch the scan counts) can start a part.
fn time_cuts(counts: &[(i64, i64)], parts: u32, first: i64, batch: Span) -> Vec<Instant> {
    let total: i64 = counts.iter().map(|(_, rows)| rows).sum();
    let mut cuts = Vec::new();
    let mut before = 0i64;
    let mut next = 1i64;
    for &(index, rows) in counts {
        let due = i128::from(before) * i128::from(parts) >= i128::from(next) * i128::from(total);
        if due && index > first && before > 0 {
            cuts.push(Instant::from_micros(index * batch.micros()));
            while i128::from(before) * i128::from(parts) >= i128::from(next) * i128::from(total) {
                next += 1;
            }
        }
        before += rows;
    }
    cuts
}

#[cfg(test)]
mod tests {
    use super::{engine_memory, jvm_memory, parts_for, time_cuts};
    use crate::time::{Instant, Span};

    #[test]
    fn memory_settings_are_read_as_duckdb_reads_them() {
        assert_eq!(engine_memory("1500MB"), Some(1_500_000_000));
        assert_eq!(engine_memory("1 GB"), Some(1_000_000_000));
        assert_eq!(engine_memory("2GiB"), Some(2 << 30));
        assert_eq!(engine_memory("0.5gb"), Some(500_000_000));
        assert_eq!(engine_memory("80%"), None);
        assert_eq!(engine_memory("lots"), None);
        assert_eq!(engine_memory(""), None);
        assert_eq!(super::duckdb_part_memory(None), 1 << 30);
        assert_eq!(super::duckdb_part_memory(Some("80%")), 1 << 30);
    }

    #[test]
    fn executor_memory_is_read_as_spark_reads_it() {
        assert_eq!(jvm_memory("3g"), Some(3 << 30));
        assert_eq!(jvm_memory("512m"), Some(512 << 20));
        assert_eq!(jvm_memory("2048"), Some(2048 << 20));
        assert_eq!(jvm_memory("1536MB"), Some(1536 << 20));
        assert_eq!(jvm_memory("4096k"), Some(4 << 20));
        assert_eq!(jvm_memory("1T"), Some(1 << 40));
        assert_eq!(jvm_memory("1.5g"), None);
        assert_eq!(jvm_memory("g"), None);
        assert_eq!(jvm_memory("99999999999p"), None);
        assert_eq!(super::spark_part_memory(None), 1 << 30);
        assert_eq!(super::spark_part_memory(Some("1.5g")), 1 << 30);
    }

    #[test]
    fn parts_follow_the_rows_and_the_memory() {
        assert_eq!(parts_for(0, 0.0, 1 << 30), 1);
        assert_eq!(parts_for(7_000_000, 0.0, 1 << 30), 1);
        assert_eq!(parts_for(10_000_000, 0.0, 1 << 30), 2);
        assert_eq!(parts_for(100_000_000, 0.0, 1 << 30), 14);
        assert_eq!(parts_for(100_000_000, 0.0, 1_500_000_000), 10);
        assert_eq!(parts_for(i64::MAX, 0.0, 1), 1024);
        // 36-byte ids (UUIDs with dashes): 150 + 4 · 36 = 294 bytes a row.
        assert_eq!(parts_for(100_000_000, 36.0, 1 << 30), 28);
        assert_eq!(parts_for(10_000_000, 36.0, 1 << 30), 3);
    }

    #[test]
    fn time_cuts_balance_the_rows_at_batch_starts() {
        let hour = Span::from_seconds(3_600);
        let at = |index: i64| Instant::from_micros(index * hour.micros());
        let even: Vec<(i64, i64)> = (0..8).map(|i| (i, 10)).collect();
        assert_eq!(time_cuts(&even, 4, i64::MIN, hour), [at(2), at(4), at(6)]);
        // A heavy batch stays whole, and a gap in the batches is no cut of its own.
        let uneven = [(0, 5), (1, 100), (5, 5), (6, 5)];
        assert_eq!(time_cuts(&uneven, 2, i64::MIN, hour), [at(5)]);
        // Batches before the first counted one start no part.
        assert_eq!(time_cuts(&even, 4, 5, hour), [at(6)]);
        assert!(time_cuts(&[(0, 10)], 4, i64::MIN, hour).is_empty());
    }
}
