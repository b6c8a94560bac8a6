//! Split scans (docs/design.md §2.14): a scan in time parts (`unit: visitor_batch`)
//! or hash parts (`unit: visitor`) gives exactly the aggregates, unmatched counts and time range of
//! the scan in one part, on a generated warehouse with NULL ids, timestamps and values, unknown
//! variants, a holdout and contexts, for full and incremental scans.

use levered::time::{Instant, Span};
use levered::warehouse::ScanResult;

use crate::support::{aggregate, Project};

/// Exposure columns with a NULL id, a NULL timestamp or a variant no arm has, now and then.
const BROKEN: &str =
    "CASE WHEN anonymous_id LIKE '%17' THEN NULL ELSE anonymous_id END AS anonymous_id, \
    CASE WHEN anonymous_id LIKE '%23' THEN NULL ELSE timestamp END AS timestamp, \
    CASE WHEN anonymous_id LIKE '%31' THEN '{}' ELSE variant END AS variant";

/// Optimizations over the broken exposures, with a numeric metric whose values are sometimes
/// NULL; `parts` is `warehouse.scan_parts`.
fn definitions(parts: u32) -> String {
    let headlines = "[Ship faster, Built for teams, Save hours, Own your data, Open source]";
    format!(
        r#"
warehouse: {{path: warehouse, scan_parts: {parts}}}
metrics:
  signup:
    type: bool
    sql: SELECT anonymous_id, created_at AS timestamp FROM signups WHERE created_at >= $start AND created_at < $end
  revenue:
    type: numeric
    sql: >-
      SELECT anonymous_id, ordered_at AS timestamp, CASE WHEN revenue < 20 THEN NULL ELSE revenue END AS value
      FROM orders WHERE ordered_at >= $start AND ordered_at < $end
optimizations:
  hero:
    status: live
    design_factors: {{headline: {headlines}, cta_text: [Start free, Book a demo]}}
    reward: signup
    exposures: {{sql: "SELECT {BROKEN}, optimization_id, context FROM exposures"}}
    attribution: {{type: last_touch, conversion_window: 24h}}
    model: {{kind: mab, batch: 1h}}
  hero_first_holdout:
    status: live
    design_factors: {{headline: {headlines}, cta_text: [Start free, Book a demo]}}
    reward: signup
    exposures:
      sql: >-
        SELECT {BROKEN}, 'hero_first_holdout' AS optimization_id, context,
        anonymous_id LIKE '%3' AS holdout FROM exposures WHERE optimization_id = 'hero'
    attribution: {{type: first_touch, conversion_window: 12h}}
    model: {{kind: mab, batch: 2h, holdout: {{share: 0.1}}}}
  checkout:
    status: live
    design_factors: {{flow: [multi_step, one_page], price_display: [monthly, annual]}}
    context_factors: [country, device]
    reward: revenue
    exposures: {{table: exposures}}
    attribution: {{type: first_touch, conversion_window: 24h}}
    model: {{kind: cmab, batch: 1h}}
  checkout_filtered:
    status: live
    design_factors: {{flow: [multi_step, one_page], price_display: [monthly, annual]}}
    reward: revenue
    exposures:
      sql: >-
        SELECT CASE WHEN anonymous_id LIKE '%17' THEN NULL ELSE anonymous_id END AS anonymous_id,
        timestamp, variant, 'checkout_filtered' AS optimization_id, context FROM exposures
        WHERE optimization_id = 'checkout' AND timestamp >= $start AND timestamp < $end
    attribution: {{type: first_touch, conversion_window: 90m}}
    model: {{kind: mab, batch: 1h}}
  checkout_visitor:
    status: live
    design_factors: {{flow: [multi_step, one_page], price_display: [monthly, annual]}}
    reward: revenue
    exposures:
      sql: >-
        SELECT {BROKEN}, 'checkout_visitor' AS optimization_id, context
        FROM exposures WHERE optimization_id = 'checkout'
    attribution: {{type: last_touch, conversion_window: 6h, unit: visitor}}
    model: {{kind: mab, batch: 1h}}
"#
    )
}

fn without_parts(result: ScanResult) -> ScanResult {
    ScanResult { parts: 0, ..result }
}

#[test]
fn split_scans_give_the_aggregates_of_one_scan() {
    let project = Project::new();
    levered::synth::write_example_warehouse(&project.path("warehouse"), 6_000, 3, 5)
        .expect("a warehouse");
    let as_of = Instant::from_utc("2026-01-08T00:00:00Z".parse().unwrap());
    let incremental = as_of - Span::from_seconds(40 * 3_600);
    for name in [
        "hero",
        "hero_first_holdout",
        "checkout",
        "checkout_filtered",
        "checkout_visitor",
    ] {
        for from_batch in [None, Some(incremental)] {
            let scan = |parts: u32| {
                let file = project.write(&format!("split-{parts}.yaml"), &definitions(parts));
                let from = from_batch.map(Instant::micros);
                aggregate(&file, name, as_of.micros(), from).unwrap_or_else(|e| panic!("{e}"))
            };
            let whole = scan(1);
            assert_eq!(whole.parts, 1);
            assert!(whole.rows.len() > 20, "{name}: {} rows", whole.rows.len());
            assert!(!whole.unmatched.is_empty(), "{name}: no unmatched rows");
            for parts in [2, 3, 7] {
                let split = scan(parts);
                let ran = split.parts;
                assert!(
                    ran > 1 && ran <= parts,
                    "{name}, {from_batch:?}: {ran} parts"
                );
                assert_eq!(
                    without_parts(split),
                    without_parts(whole.clone()),
                    "{name}, {parts} parts, from {from_batch:?}"
                );
            }
        }
    }
}
