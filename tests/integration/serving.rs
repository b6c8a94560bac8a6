//! The serving contract (README, "Serving: `levered assign`") against vectors computed apart from levered, in plain Python
//! (`scripts/serving_vectors.py` → `fixtures/serving/vectors.json`), and served shares against the
//! weights by a chi-square test.

use levered::allocation::{assign, context_key, ServingRow};
use levered::domain::{ArmId, ContextKey, Role};

use crate::support::{repo, Project};

fn vectors() -> serde_json::Value {
    let text = std::fs::read_to_string(repo().join("fixtures/serving/vectors.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn rows(file: &serde_json::Value) -> Vec<ServingRow> {
    file["allocation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| ServingRow {
            context: ContextKey::new(r["context"].as_str().unwrap()),
            arm_id: ArmId::parse(r["arm_id"].as_str().unwrap()).unwrap(),
            role: Role::parse(r["role"].as_str().unwrap()).unwrap(),
            variant: r["variant"].as_str().unwrap().into(),
            weight: r["weight"].as_f64().unwrap(),
        })
        .collect()
}

fn pairs(context: &serde_json::Value) -> Vec<(String, String)> {
    context
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn the_reference_assignment_reproduces_the_test_vectors() {
    let file = vectors();
    let rows = rows(&file);
    let factors: Vec<String> = serde_json::from_value(file["context_factors"].clone()).unwrap();
    let vectors = file["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 60);
    let mut holdouts = 0;
    for v in vectors {
        let at: chrono::DateTime<chrono::Utc> = v["at"].as_str().unwrap().parse().unwrap();
        let batch_start = at.timestamp() - at.timestamp().rem_euclid(3600);
        let key = context_key(&factors, &pairs(&v["context"]));
        let got = assign(
            &rows,
            "hero",
            v["unit"].as_str().unwrap(),
            &key,
            batch_start,
        )
        .unwrap();
        let expected = &v["expected"];
        assert_eq!(
            got.batch_start,
            expected["batch_start"].as_i64().unwrap(),
            "{v}"
        );
        assert_eq!(
            got.context.as_str(),
            expected["context"].as_str().unwrap(),
            "{v}"
        );
        assert_eq!(got.holdout, expected["holdout"].as_bool().unwrap(), "{v}");
        assert_eq!(
            got.arm_id.to_string(),
            expected["arm_id"].as_str().unwrap(),
            "{v}"
        );
        holdouts += usize::from(got.holdout);
    }
    assert!(holdouts > 0, "the vectors exercise the holdout");
}

#[test]
fn the_assign_command_serves_what_the_vectors_say() {
    let file = vectors();
    let project = Project::new();
    let mut csv =
        String::from("optimization,run_id,trained_at,context,arm_id,role,variant,weight,status\n");
    for r in file["allocation"].as_array().unwrap() {
        csv.push_str(&format!(
            "hero,r,t,{},{},{},\"{}\",{},active\n",
            r["context"].as_str().unwrap(),
            r["arm_id"].as_str().unwrap(),
            r["role"].as_str().unwrap(),
            r["variant"].as_str().unwrap().replace('"', "\"\""),
            r["weight"]
        ));
    }
    project.write("out/hero/allocation.csv", &csv);
    project.write(
        "levered.yaml",
        r#"
warehouse: {path: warehouse.duckdb}
metrics: {signup: {type: bool, sql: "SELECT 1"}}
optimizations:
  hero:
    status: live
    design_factors: {headline: [A, B, C, D]}
    context_factors: [country, device]
    reward: signup
    exposures: {table: exposures}
    attribution: {conversion_window: 1h}
    model: {kind: cmab}
"#,
    );
    for v in file["vectors"].as_array().unwrap().iter().take(12) {
        let mut args = vec![
            "assign".to_string(),
            "--config".into(),
            "levered.yaml".into(),
            "--optimization".into(),
            "hero".into(),
            "--unit".into(),
            v["unit"].as_str().unwrap().into(),
            "--at".into(),
            v["at"].as_str().unwrap().into(),
            "--format".into(),
            "json".into(),
        ];
        for (k, value) in pairs(&v["context"]) {
            args.push("--context".into());
            args.push(format!("{k}={value}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = project.levered(&args);
        assert_eq!(out.code, 0, "{out:?}");
        let got: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let expected = &v["expected"];
        assert_eq!(got["arm_id"], expected["arm_id"], "{v}");
        assert_eq!(got["holdout"], expected["holdout"], "{v}");
        assert_eq!(got["context"], expected["context"], "{v}");
    }
    let out = project.levered(&[
        "assign",
        "--config",
        "levered.yaml",
        "--optimization",
        "hero",
        "--unit",
        "x",
        "--context",
        "planet=mars",
    ]);
    assert_eq!(
        out.code, 2,
        "an unknown context factor is a usage error: {out:?}"
    );
}

#[test]
fn served_shares_follow_the_weights() {
    let rows = rows(&vectors());
    // Context `*`: holdout 0.1, then arms 1-4 at 0.9 × (0.05, 0.45, 0.3, 0.2).
    let weights = [0.1, 0.045, 0.405, 0.27, 0.18];
    let mut counts = [0.0f64; 5];
    let n = 20_000;
    for i in 0..n {
        // A new batch every 7 visitors: the hash must mix batch and visitor.
        let batch_start = 1_772_323_200 + 3600 * (i / 7);
        let got = assign(
            &rows,
            "hero",
            &format!("v{i}"),
            &ContextKey::pooled(),
            batch_start,
        )
        .unwrap();
        let slot = if got.holdout {
            0
        } else {
            got.arm_id.arm().unwrap() as usize
        };
        counts[slot] += 1.0;
    }
    let expected: Vec<f64> = weights.iter().map(|w| w * n as f64).collect();
    let test = levered::model::srm(&counts, &expected).unwrap();
    // p is the chance of a split at least this far off if the shares equal the weights.
    assert!(test.p_value > 0.001, "{counts:?} vs {expected:?}: {test:?}");
    // And a skewed reading of the same draws is caught: the power of the test is real.
    let skewed: Vec<f64> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| {
            (w + if i == 1 {
                0.01
            } else if i == 2 {
                -0.01
            } else {
                0.0
            }) * n as f64
        })
        .collect();
    assert!(levered::model::srm(&counts, &skewed).unwrap().p_value < 0.001);
}
