//! The serving contract (docs/design.md §5): which row of the allocation a visitor is served.
//! SDKs implement the same rule; `fixtures/serving/vectors.json` pins it.

use sha2::{Digest, Sha256};

use crate::domain::{ArmId, ContextKey, Role};

/// One row of `allocation.csv`, as the serving side reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServingRow {
    pub context: ContextKey,
    pub arm_id: ArmId,
    pub role: Role,
    pub variant: String,
    pub weight: f64,
}

/// What a visitor is served.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Assignment {
    /// The context whose rows were used: the visitor's own, or `*`.
    pub context: ContextKey,
    pub batch_start: i64,
    pub holdout: bool,
    pub arm_id: ArmId,
    pub variant: serde_json::Value,
    /// The weight of the served row in the allocation.
    pub weight: f64,
}

/// `H(s)`: the first 8 bytes of SHA-256(s) as a big-endian integer, divided by 2^64.
pub fn unit_hash(s: &str) -> f64 {
    let digest = Sha256::digest(s.as_bytes());
    let word = u64::from_be_bytes(
        digest[..8]
            .try_into()
            .expect("a SHA-256 digest has 32 bytes"),
    );
    // The integer rounded to the nearest double, then scaled by 2^-64 (exact): the correctly rounded
    // quotient, as Python's `int / 2**64` gives it.
    word as f64 / 18_446_744_073_709_551_616.0
}

/// The context key of a visitor: `factor=value` in `factors` order joined by `|` (a factor the
/// visitor lacks has an empty value); `*` for a model without context factors.
pub fn context_key(factors: &[String], given: &[(String, String)]) -> ContextKey {
    ContextKey::of_pairs(factors.iter().map(|f| {
        let value = given
            .iter()
            .find(|(k, _)| k == f)
            .map_or("", |(_, v)| v.as_str());
        (f.as_str(), value)
    }))
}

/// Serves `unit` of `optimization` in the batch starting at `batch_start` (whole Unix seconds):
/// sticky holdout membership first (`H("{opt}:holdout:{unit}") < h`), else
/// `u = H("{opt}:{unit}:{batch_start}")` against the cumulative bandit weights divided by `1 − h`,
/// by arm id. The rows of `context`, else `*`. `None` when neither has a row.
pub fn assign(
    rows: &[ServingRow],
    optimization: &str,
    unit: &str,
    context: &ContextKey,
    batch_start: i64,
) -> Option<Assignment> {
    let pooled = ContextKey::pooled();
    let context = if rows.iter().any(|r| &r.context == context) {
        context
    } else {
        &pooled
    };
    let rows: Vec<&ServingRow> = rows.iter().filter(|r| &r.context == context).collect();
    let holdout_row = rows.iter().find(|r| r.role == Role::Holdout);
    let h = holdout_row.map_or(0.0, |r| r.weight);
    let serve = |row: &ServingRow, holdout: bool| Assignment {
        context: context.clone(),
        batch_start,
        holdout,
        arm_id: row.arm_id,
        variant: serde_json::from_str(&row.variant)
            .unwrap_or_else(|_| serde_json::Value::String(row.variant.clone())),
        weight: row.weight,
    };
    if let Some(row) = holdout_row {
        if unit_hash(&format!("{optimization}:holdout:{unit}")) < h {
            return Some(serve(row, true));
        }
    }
    let mut bandit: Vec<&ServingRow> = rows
        .iter()
        .copied()
        .filter(|r| r.role == Role::Bandit)
        .collect();
    bandit.sort_by_key(|r| r.arm_id);
    let u = unit_hash(&format!("{optimization}:{unit}:{batch_start}"));
    let scale = 1.0 - h;
    let mut cumulative = 0.0;
    for row in &bandit {
        cumulative += row.weight / scale;
        if cumulative > u {
            return Some(serve(row, false));
        }
    }
    // Rounding left the sum under u: the last row that serves.
    bandit
        .iter()
        .rev()
        .find(|r| r.weight > 0.0)
        .or(bandit.last())
        .map(|row| serve(row, false))
}
