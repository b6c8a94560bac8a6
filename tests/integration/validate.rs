//! `levered validate` on the corpus of broken definitions in tests/validate/: each file starts with
//! `# expect: <exit code> <message>`.

use crate::support::{repo, Project};

#[test]
fn every_broken_definition_gives_its_message_and_exit_code() {
    let corpus = repo().join("tests/validate");
    let mut files: Vec<_> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 12, "{files:?}");
    let project = Project::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .expect("an expect line");
        let (code, message) = expect.split_once(' ').unwrap();
        let out = project.levered(&["validate", "--config", file.to_str().unwrap()]);
        let all = format!("{}{}", out.stdout, out.stderr);
        assert_eq!(out.code.to_string(), code, "{}: {all}", file.display());
        assert!(
            all.contains(message),
            "{}: expected `{message}` in\n{all}",
            file.display()
        );
        if code == "3" {
            // The finding points at the YAML: file:line.
            assert!(all.contains(&format!("{}:", file.display())), "{all}");
        }
    }
}

#[test]
fn the_example_is_valid_and_samples_report_counts() {
    let project = Project::new();
    let config = repo().join("optimizations.example.yaml");
    let out = project.levered(&[
        "validate",
        "--config",
        config.to_str().unwrap(),
        "--sample",
        "--as-of",
        "2026-01-08T00:00:00Z",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("valid: 0 errors"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("sample hero: since 2026-01-06T00:00:00Z"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("unknown_variant"), "{}", out.stdout);
}

#[test]
fn json_and_github_formats() {
    let project = Project::new();
    let file = repo().join("tests/validate/text_timestamp.yaml");
    let out = project.levered(&[
        "validate",
        "--config",
        file.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 3);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(json["valid"], false);
    let error = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["severity"] == "error")
        .unwrap();
    assert_eq!(error["path"], "metrics.signup.sql");
    assert!(error["line"].as_u64().is_some());

    let out = project.levered(&[
        "validate",
        "--config",
        file.to_str().unwrap(),
        "--format",
        "github",
    ]);
    assert_eq!(out.code, 3);
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("::error "))
        .expect("an error annotation");
    assert!(
        line.contains(&format!("file={}", file.display()).replace(':', "%3A")),
        "{line}"
    );
    assert!(line.contains(",line="), "{line}");
}

#[test]
fn offline_skips_the_engine() {
    let project = Project::new();
    let file = repo().join("tests/validate/unreachable_warehouse.yaml");
    let out = project.levered(&["validate", "--config", file.to_str().unwrap(), "--offline"]);
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn spark_remote_overrides_the_address_of_an_engine_spark_warehouse() {
    let project = Project::new();
    let config = repo().join("tests/validate/spark_unreachable.yaml");
    let config = config.to_str().unwrap();
    let out = project.levered_with(
        &["validate", "--config", config],
        &[("SPARK_REMOTE", "sc://127.0.0.1:8")],
    );
    let all = format!("{}{}", out.stdout, out.stderr);
    assert_eq!(out.code, 4, "{all}");
    assert!(
        all.contains("cannot open the warehouse sc://127.0.0.1:8"),
        "{all}"
    );
    let out = project.levered_with(
        &["validate", "--config", config],
        &[("SPARK_REMOTE", "spark-host:15002")],
    );
    let all = format!("{}{}", out.stdout, out.stderr);
    assert_eq!(out.code, 3, "{all}");
    assert!(all.contains("is not a Spark Connect address"), "{all}");
}

/// A definition for the tests below: the metric `signup` and the optimization `cta` with `keys`.
fn definition(keys: &str) -> String {
    format!(
        "warehouse: {{path: warehouse.duckdb}}\nmetrics:\n  signup:\n    type: bool\n    sql: SELECT anonymous_id, created_at AS timestamp FROM signups\noptimizations:\n  cta:\n{keys}"
    )
}

fn validate_offline(project: &Project, name: &str, text: &str) -> String {
    project.write(name, text);
    let out = project.levered(&["validate", "--offline", "--config", name]);
    assert_eq!(out.code, 3, "{out:?}");
    format!("{}{}", out.stdout, out.stderr)
}

#[test]
fn every_missing_key_is_reported_at_once_under_its_own_path() {
    let project = Project::new();
    let all = validate_offline(
        &project,
        "missing.yaml",
        &definition("    design_factors: {color: [red, blue]}\n"),
    );
    for key in ["status", "reward", "exposures", "attribution", "model"] {
        assert!(
            all.contains(&format!(
                "missing.yaml:8:5: error: optimizations.cta.{key}: missing: "
            )),
            "{key}: {all}"
        );
    }
    assert!(
        all.contains("hint: status: live (or completed, archived)"),
        "{all}"
    );
    assert!(all.contains("invalid: 5 errors"), "{all}");
    assert!(!all.contains("missing field"), "{all}");

    let all = validate_offline(&project, "empty.yaml", "metrics: {}\n");
    assert!(
        all.contains("error: warehouse: missing: where the data is"),
        "{all}"
    );
    assert!(all.contains("error: optimizations: missing: "), "{all}");
}

#[test]
fn a_misindented_key_is_told_apart_from_a_misspelt_one() {
    let project = Project::new();
    let body = "    status: live\n    design_factors: {color: [red, blue]}\n    exposures: {table: exposures}\n    attribution: {type: last_touch, conversion_window: 24h}\n    model:\n      kind: mab\n";
    let deeper = format!("{}      reward: signup\n", definition(body));
    let all = validate_offline(&project, "deeper.yaml", &deeper);
    assert!(
        all.contains(
            "deeper.yaml:14:7: error: optimizations.cta.model.reward: unknown field `reward`"
        ),
        "{all}"
    );
    assert!(
        all.contains("hint: `reward` is a key of an optimization: check its indentation"),
        "{all}"
    );

    let shallower = format!("{}  reward: signup\n", definition(body));
    let all = validate_offline(&project, "shallower.yaml", &shallower);
    assert!(
        all.contains(
            "optimizations.reward: `reward` is written where the name of an optimization belongs"
        ),
        "{all}"
    );

    let typo = format!("{}      flor: 0.1\n", definition(body));
    let all = validate_offline(&project, "typo.yaml", &typo);
    assert!(
        all.contains("hint: check the spelling; docs/design.md §1.2–§1.5 lists every key"),
        "{all}"
    );
}

#[test]
fn a_problem_points_at_its_own_key() {
    let project = Project::new();
    let body = "    status: live\n    reward: signup\n    design_factors: {color: [red, blue]}\n    exposures: {table: exposures}\n    attribution: {type: last_touch, conversion_window: 24h}\n    model:\n      kind: mab\n      floor: 2\n      batch: 1x\n";
    let all = validate_offline(&project, "keys.yaml", &definition(body));
    assert!(
        all.contains("keys.yaml:16:14: error: optimizations.cta.model.batch: `1x`"),
        "{all}"
    );
    assert!(
        all.contains("keys.yaml:15:14: error: optimizations.cta.model.floor: 2 is not in [0, 1]"),
        "{all}"
    );
}

/// The example with its `hero` optimization renamed, so that no exposure row carries its id.
fn renamed_example(project: &Project) -> String {
    let example = std::fs::read_to_string(repo().join("optimizations.example.yaml")).unwrap();
    let warehouse = repo().join("fixtures/warehouse");
    let renamed = example.replace("\n  hero:\n", "\n  hero_v2:\n").replace(
        "path: fixtures/warehouse",
        &format!("path: {}", warehouse.display()),
    );
    project.write("renamed.yaml", &renamed);
    project.copy_example_metrics();
    "renamed.yaml".into()
}

#[test]
fn unmatched_rows_are_shown_with_a_few_of_their_values() {
    let project = Project::new();
    let config = repo().join("optimizations.example.yaml");
    let config = config.to_str().unwrap();
    let as_of = ["--as-of", "2026-01-08T00:00:00Z"];
    let out =
        project.levered(&[&["validate", "--sample", "--config", config], &as_of[..]].concat());
    assert_eq!(out.code, 0, "{out:?}");
    let retired = r#"'{"headline":"Retired headline","cta_text":"Start free"}'"#;
    assert!(
        out.stdout.contains(&format!(
            "warning: optimizations.hero.exposures: the sample since 2026-01-06T00:00:00Z found 17 exposure rows whose variant no arm has; variants of optimization_id 'hero' that no arm has: {retired} (a variant is a JSON object of one level per factor of design_factors: {{headline: [Ship faster, "
        )),
        "{}",
        out.stdout
    );

    // A sample day after the data: the optimization's own older rows are not offered as an id.
    let late = ["--as-of", "2026-01-20T00:00:00Z"];
    let out = project.levered(&[&["validate", "--sample", "--config", config], &late[..]].concat());
    assert!(
        out.stdout.contains("no exposure row in the scanned range has optimization_id 'hero'; other optimization ids in the source: 'checkout' (optimization_id must"),
        "{}",
        out.stdout
    );

    let renamed = renamed_example(&project);
    let out =
        project.levered(&[&["validate", "--sample", "--config", &renamed], &as_of[..]].concat());
    assert_eq!(out.code, 0, "{out:?}");
    let elsewhere =
        "no exposure row in the scanned range has optimization_id 'hero_v2'; other optimization ids in the source: 'checkout', 'hero'";
    assert!(
        out.stdout.contains(&format!(
            "warning: optimizations.hero_v2.exposures: the sample since 2026-01-06T00:00:00Z found no exposure row of this optimization: {elsewhere}"
        )),
        "{}",
        out.stdout
    );
    let out = project.levered(&[&["train", "--all", "--config", &renamed], &as_of[..]].concat());
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "warning: hero_v2: no valid exposure found for this optimization: {elsewhere}"
        )),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("warning: checkout"),
        "an optimization with rows has no sample: {}",
        out.stderr
    );
}

/// The example's definitions in `project`, reading the fixture warehouse, with the metric
/// `signup`'s SQL given as `signup` (YAML text of its keys after `type`).
fn example_with_signup_sql(project: &Project, signup: &str) -> String {
    let example = std::fs::read_to_string(repo().join("optimizations.example.yaml")).unwrap();
    let warehouse = repo().join("fixtures/warehouse");
    let text = example
        .replace(
            "path: fixtures/warehouse",
            &format!("path: {}", warehouse.display()),
        )
        .replace(
            "    sql_file: sql/metrics/signup.sql  # or the SQL inline, under `sql:`\n",
            signup,
        );
    assert_ne!(text, example);
    project.write("defs/levered.yaml", &text);
    project.copy_example_metrics();
    std::fs::rename(project.path("sql"), project.path("defs/sql")).unwrap();
    "defs/levered.yaml".into()
}

#[test]
fn metric_sql_files_are_read_from_inside_the_definitions_folder_only() {
    let project = Project::new();
    project.write("secret.sql", "SELECT 'the secret' AS anonymous_id");
    std::fs::create_dir_all(project.path("defs")).unwrap();
    std::os::unix::fs::symlink(project.path("secret.sql"), project.path("defs/link.sql")).unwrap();
    let secret = project.path("secret.sql");
    for (key, message) in [
        (
            "sql_file: ../secret.sql",
            "`../secret.sql` is not a file inside the definitions file's folder",
        ),
        (
            &format!("sql_file: {}", secret.display()) as &str,
            "is not a file inside the definitions file's folder",
        ),
        (
            "sql_file: link.sql",
            "`link.sql` is not a file inside the definitions file's folder",
        ),
        (
            "sql_file: sql",
            "`sql` is not a file inside the definitions file's folder",
        ),
        (
            "sql_file: sql/metrics/none.sql",
            "cannot read `sql/metrics/none.sql`",
        ),
        (
            "sql: SELECT 1\n    sql_file: sql/metrics/signup.sql",
            "has both `sql` and `sql_file`",
        ),
    ] {
        let config = example_with_signup_sql(&project, &format!("    {key}\n"));
        let out = project.levered(&["validate", "--offline", "--config", &config]);
        let all = format!("{}{}", out.stdout, out.stderr);
        assert_eq!(out.code, 3, "{key}: {all}");
        assert!(all.contains("error: metrics.signup"), "{key}: {all}");
        assert!(all.contains(message), "{key}: {all}");
        assert!(!all.contains("the secret"), "{key}: {all}");
        std::fs::remove_dir_all(project.path("defs/sql")).unwrap();
    }
    std::fs::write(
        project.path("defs/latin1.sql"),
        b"SELECT '\xe9' AS anonymous_id",
    )
    .unwrap();
    let config = example_with_signup_sql(&project, "    sql_file: latin1.sql\n");
    let out = project.levered(&["validate", "--offline", "--config", &config]);
    assert!(
        out.stdout.contains("`latin1.sql` is not UTF-8 text"),
        "{out:?}"
    );
}

#[test]
fn a_problem_in_a_metric_sql_file_points_at_the_file_and_line() {
    let project = Project::new();
    let config = example_with_signup_sql(&project, "    sql_file: sql/metrics/broken.sql\n");
    project.write(
        "defs/sql/metrics/broken.sql",
        "SELECT anonymous_id, created_at AS timestamp\nFROM signups\nWHERE creatd_at >= $start AND created_at < $end\n",
    );
    let out = project.levered(&["validate", "--config", &config]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stdout.contains("defs/sql/metrics/broken.sql:3:7: error: metrics.signup.sql: the engine rejects the SQL: Binder Error: Referenced column \"creatd_at\" not found"),
        "{}",
        out.stdout
    );
    let out = project.levered(&["validate", "--format", "github", "--config", &config]);
    assert!(
        out.stdout
            .contains("file=defs/sql/metrics/broken.sql,line=3,col=7"),
        "{}",
        out.stdout
    );

    project.write(
        "defs/sql/metrics/broken.sql",
        "SELECT anonymous_id\nFROM signups\n",
    );
    let out = project.levered(&["validate", "--config", &config]);
    assert!(
        out.stdout.contains("defs/sql/metrics/broken.sql:1:1: warning: metrics.signup.sql: the SQL does not filter on $start and $end"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("defs/sql/metrics/broken.sql:1:1: error: metrics.signup.sql: column `timestamp` (the reward time) is missing"),
        "{}",
        out.stdout
    );
}
