//! The JSON Schema of the definitions file (docs/definitions.schema.json), which editors with
//! yaml-language-server use: it accepts the definitions levered accepts and refuses, like
//! `levered validate`, a definition of the wrong shape.

use crate::support::{repo, Project};

fn schema_text() -> String {
    std::fs::read_to_string(repo().join("docs/definitions.schema.json")).unwrap()
}

fn validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(&schema_text()).unwrap();
    jsonschema::draft7::new(&schema).expect("a valid draft-07 schema")
}

/// A definitions file as the JSON value an editor checks against the schema.
fn as_json(yaml: &str) -> serde_json::Value {
    serde_saphyr::from_str(yaml).expect("YAML")
}

#[test]
fn the_schema_accepts_the_examples_and_levered_prints_it() {
    let validator = validator();
    for file in [
        "optimizations.example.yaml",
        "examples/own-warehouse/optimizations.yaml",
    ] {
        let text = std::fs::read_to_string(repo().join(file)).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&as_json(&text))
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{file}: {errors:?}");
    }
    let example = std::fs::read_to_string(repo().join("optimizations.example.yaml")).unwrap();
    assert!(
        example.starts_with("# yaml-language-server: $schema=docs/definitions.schema.json\n"),
        "the example names its schema on its first line"
    );
    let out = Project::new().levered(&["schema"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, schema_text());
}

#[test]
fn the_schema_refuses_what_validate_refuses_for_its_shape() {
    let validator = validator();
    let project = Project::new();
    project.copy_example_metrics();
    let example = std::fs::read_to_string(repo().join("optimizations.example.yaml")).unwrap();
    let warehouse = repo().join("fixtures/warehouse");
    let example = example.replace(
        "path: fixtures/warehouse",
        &format!("path: {}", warehouse.display()),
    );
    assert!(validator.is_valid(&as_json(&example)));
    for (from, to) in [
        ("    status: live\n", ""),
        ("      floor: 0.02\n", "      flor: 0.02\n"),
        ("      floor: 0.02\n", "      floor: 2\n"),
        ("    status: live\n", "    status: paused\n"),
        ("conversion_window: 24h", "conversion_window: 1 day"),
        ("    type: bool\n", "    type: bool\n    sql: SELECT 1\n"),
        (
            "  stale_after: 6h\n",
            "  stale_after: 6h\n  engine: oracle\n",
        ),
        ("kind: mab", "kind: bandit"),
    ] {
        assert!(example.contains(from), "{from}");
        let broken = example.replacen(from, to, 1);
        assert!(
            !validator.is_valid(&as_json(&broken)),
            "the schema takes {to:?}"
        );
        project.write("broken.yaml", &broken);
        let out = project.levered(&["validate", "--offline", "--config", "broken.yaml"]);
        assert_eq!(out.code, 3, "levered takes {to:?}: {out:?}");
    }
}
