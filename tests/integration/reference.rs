//! The generated SQL against a plain, loop-by-loop reading of the README's "What `train` does" on many small random
//! warehouses with ties, window edges, repeat visitors and unmatched rows.

use std::collections::BTreeMap;

use levered::config::{Touch, Unit};
use levered::warehouse::Unmatched;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::support::{aggregate, Project};

const MINUTE: i64 = 60_000_000;
const DAY_START: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z

struct Exposure {
    id: Option<String>,
    at: i64,
    variant: String,
    holdout: bool,
}

struct Reward {
    id: String,
    at: i64,
    value: i64,
}

const VARIANTS: [(&str, Option<u32>); 6] = [
    (r#"{"color":"red","size":"s"}"#, Some(1)),
    (r#"{"color":"red","size":"l"}"#, Some(2)),
    (r#"{"size":"s","color":"blue"}"#, Some(3)),
    (r#"{"color": "blue", "size": "l"}"#, Some(4)),
    (r#"{"color":"green","size":"l"}"#, None),
    ("[1, 2]", None),
];

/// (batch start, arm, holdout) → (units, conversions, value sum, value square sum)
type Cells = BTreeMap<(i64, u32, bool), (i64, i64, i64, i64)>;

/// The README's "What `train` does", read literally.
fn reference(
    exposures: &[Exposure],
    rewards: &[Reward],
    as_of: i64,
    window: i64,
    batch: i64,
    touch: Touch,
    unit: Unit,
) -> (Cells, BTreeMap<Unmatched, i64>) {
    let mut unmatched = BTreeMap::new();
    // (visitor, unit key) → (time, 2·arm + holdout) of the first valid exposure; ties go to the
    // smaller arm, then to the bandit side.
    let mut units: BTreeMap<(String, i64), (i64, u32)> = BTreeMap::new();
    for e in exposures {
        let arm = VARIANTS.iter().find(|v| v.0 == e.variant).and_then(|v| v.1);
        let reason = match (&e.id, arm) {
            (None, _) => Some(Unmatched::NullId),
            _ if e.at >= as_of => Some(Unmatched::Future),
            (_, None) => Some(Unmatched::UnknownVariant),
            _ => None,
        };
        if let Some(reason) = reason {
            *unmatched.entry(reason).or_insert(0) += 1;
            continue;
        }
        let id = e.id.clone().unwrap();
        let key = match unit {
            Unit::VisitorBatch => e.at.div_euclid(batch),
            Unit::Visitor => 0,
        };
        let candidate = (e.at, 2 * arm.unwrap() + u32::from(e.holdout));
        let slot = units.entry((id, key)).or_insert(candidate);
        if candidate < *slot {
            *slot = candidate;
        }
    }
    // Attribution over all units: each reward to at most one unit.
    let mut credited: BTreeMap<(String, i64), (i64, i64)> = BTreeMap::new();
    for r in rewards.iter().filter(|r| r.at < as_of) {
        let times = units
            .iter()
            .filter(|((id, _), (t, _))| *id == r.id && *t <= r.at && r.at <= *t + window)
            .map(|(_, (t, _))| *t);
        let chosen = match touch {
            Touch::LastTouch => times.max(),
            Touch::FirstTouch => times.min(),
        };
        if let Some(t) = chosen {
            let c = credited.entry((r.id.clone(), t)).or_insert((0, 0));
            c.0 += 1;
            c.1 += r.value;
        }
    }
    let mut cells = Cells::new();
    for ((id, _), (t, key)) in &units {
        if t + window > as_of {
            continue;
        }
        let (n, value) = credited.get(&(id.clone(), *t)).copied().unwrap_or((0, 0));
        let cell = cells
            .entry((t.div_euclid(batch) * batch, key / 2, key % 2 == 1))
            .or_insert((0, 0, 0, 0));
        cell.0 += 1;
        cell.1 += i64::from(n > 0);
        cell.2 += value;
        cell.3 += value * value;
    }
    (cells, unmatched)
}

fn random_warehouse(rng: &mut ChaCha8Rng) -> (Vec<Exposure>, Vec<Reward>) {
    let visitors = rng.random_range(2..8);
    let exposures = (0..rng.random_range(5..40))
        .map(|_| Exposure {
            id: (rng.random_range(0..20) != 0)
                .then(|| format!("v{}", rng.random_range(0..visitors))),
            // Whole quarter hours over 30 hours, so that ties and exact window edges happen.
            at: DAY_START + rng.random_range(0..120) * 15 * MINUTE,
            variant: VARIANTS[rng.random_range(0..VARIANTS.len())].0.to_string(),
            holdout: rng.random_range(0..5) == 0,
        })
        .collect();
    let rewards = (0..rng.random_range(0..30))
        .map(|_| Reward {
            id: format!("v{}", rng.random_range(0..visitors)),
            at: DAY_START + rng.random_range(0..130) * 15 * MINUTE,
            value: rng.random_range(1..10),
        })
        .collect();
    (exposures, rewards)
}

fn sql_literal(at: i64) -> String {
    let t = chrono::DateTime::from_timestamp_micros(at).unwrap();
    format!("'{}'", t.format("%Y-%m-%d %H:%M:%S"))
}

#[test]
fn generated_sql_matches_a_literal_reading_of_the_semantics() {
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let as_of = DAY_START + 28 * 60 * MINUTE;
    let mut split_scans = 0;
    let mut unsplit_unmatched = BTreeMap::new();
    for round in 0..24 {
        let (exposures, rewards) = random_warehouse(&mut rng);
        let project = Project::new();
        let mut sql = String::from(
            "CREATE TABLE exposures (anonymous_id VARCHAR, timestamp TIMESTAMP, optimization_id VARCHAR, variant VARCHAR, holdout BOOLEAN);
             CREATE TABLE orders (anonymous_id VARCHAR, ordered_at TIMESTAMP, value DOUBLE);\n",
        );
        for e in &exposures {
            let id = e.id.as_ref().map_or("NULL".into(), |v| format!("'{v}'"));
            sql.push_str(&format!(
                "INSERT INTO exposures VALUES ({id}, {}, 'opt', '{}', {});\n",
                sql_literal(e.at),
                e.variant,
                e.holdout
            ));
        }
        for r in &rewards {
            sql.push_str(&format!(
                "INSERT INTO orders VALUES ('{}', {}, {});\n",
                r.id,
                sql_literal(r.at),
                r.value
            ));
        }
        project.warehouse(&sql);
        // A 90-minute window leaves the last hour's units immature; a 6-hour one, the last six
        // hours, which the query reads as late rows (rivals for rewards, never deduplicated). The
        // incremental scan recomputes the batches from hour 20 on.
        let scans = [
            (90 * MINUTE, None),
            (360 * MINUTE, None),
            (360 * MINUTE, Some(DAY_START + 20 * 60 * MINUTE)),
        ];
        // Every other round, each scan also runs split: in time parts under visitor_batch, in
        // hash parts under visitor (docs/design.md §2.14).
        let splits: &[u32] = if round % 2 == 0 {
            &[1, 2 + round % 8 / 2]
        } else {
            &[1]
        };
        for (((touch, unit), (window, from_batch)), parts) in [
            (Touch::LastTouch, Unit::VisitorBatch),
            (Touch::FirstTouch, Unit::VisitorBatch),
            (Touch::LastTouch, Unit::Visitor),
            (Touch::FirstTouch, Unit::Visitor),
        ]
        .into_iter()
        .flat_map(|pair| scans.map(|scan| (pair, scan)))
        .flat_map(|case| splits.iter().map(move |&parts| (case, parts)))
        {
            let touch_name = if touch == Touch::LastTouch {
                "last_touch"
            } else {
                "first_touch"
            };
            let unit_name = if unit == Unit::Visitor {
                "visitor"
            } else {
                "visitor_batch"
            };
            let window_minutes = window / MINUTE;
            let file = project.write(
                "levered.yaml",
                &format!(
                    "warehouse: {{path: warehouse.duckdb, scan_parts: {parts}}}
metrics:
  spend: {{type: numeric, sql: 'SELECT anonymous_id, ordered_at AS timestamp, value FROM orders'}}
optimizations:
  opt:
    status: live
    design_factors: {{color: [red, blue], size: [s, l]}}
    reward: spend
    exposures: {{table: exposures}}
    attribution: {{type: {touch_name}, unit: {unit_name}, conversion_window: {window_minutes}m}}
    model: {{kind: mab, batch: 1h}}
"
                ),
            );
            let result = aggregate(&file, "opt", as_of, from_batch).unwrap();
            split_scans += usize::from(result.parts > 1);
            let actual: Cells = result
                .rows
                .iter()
                .map(|r| {
                    (
                        (r.batch_start.micros(), r.arm_id, r.holdout),
                        (
                            r.units,
                            r.conversions,
                            r.value_sum as i64,
                            r.value_sq_sum as i64,
                        ),
                    )
                })
                .collect();
            let (mut expected, unmatched) = reference(
                &exposures,
                &rewards,
                as_of,
                window,
                60 * MINUTE,
                touch,
                unit,
            );
            let case = format!(
                "round {round}, {touch_name}, {unit_name}, {window_minutes}m, {parts} parts"
            );
            if parts == 1 {
                unsplit_unmatched = result.unmatched.clone();
            } else {
                assert_eq!(result.unmatched, unsplit_unmatched, "{case}");
            }
            if let Some(from) = from_batch {
                // An incremental scan returns the batches it recomputes; its unmatched counts cover
                // only the rows it reads.
                expected.retain(|(batch, _, _), _| *batch >= from);
            } else {
                assert_eq!(result.unmatched, unmatched, "{case}");
            }
            assert_eq!(actual, expected, "{case}, from {from_batch:?}");
        }
    }
    assert!(split_scans > 120, "{split_scans} scans ran in parts");
}
