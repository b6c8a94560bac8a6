//! The command line: each exit code, and the messages a user sees.

use crate::example::example_project;
use crate::support::{read_csv, Project};

const AS_OF: &str = "2026-01-08T00:00:00Z";

fn train(project: &Project, extra: &[&str]) -> crate::support::Output {
    let mut args = vec![
        "train",
        "--config",
        "optimizations.example.yaml",
        "--as-of",
        AS_OF,
    ];
    args.extend_from_slice(extra);
    project.levered(&args)
}

#[test]
fn usage_errors_exit_2() {
    let project = example_project();
    assert_eq!(project.levered(&["train", "--bogus"]).code, 2);
    let out = train(&project, &["--optimization", "nope"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("known optimizations: checkout, hero"),
        "{}",
        out.stderr
    );
    let out = project.levered(&[
        "train",
        "--all",
        "--config",
        "optimizations.example.yaml",
        "--as-of",
        "yesterday",
    ]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("RFC 3339"), "{}", out.stderr);
}

#[test]
fn help_lists_the_exit_codes() {
    let out = Project::new().levered(&["train", "--help"]);
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.contains("5  state store locked"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_malformed_yaml_exits_3_with_its_line() {
    let project = example_project();
    let text = std::fs::read_to_string(project.path("optimizations.example.yaml")).unwrap();
    // Line 4 gets a key the schema does not know.
    let broken: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 3 {
                format!("{l}\n  pathh: oops")
            } else {
                l.to_string()
            }
        })
        .collect();
    project.write("optimizations.example.yaml", &broken.join("\n"));
    let out = train(&project, &["--all"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains("optimizations.example.yaml:5"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("warehouse.pathh: unknown field"),
        "{}",
        out.stderr
    );

    project.write(
        "optimizations.example.yaml",
        "warehouse: {path: x\noptimizations: [",
    );
    let out = train(&project, &["--all"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains("optimizations.example.yaml:"),
        "{}",
        out.stderr
    );
}

#[test]
fn semantic_errors_are_all_reported_with_key_paths() {
    let project = example_project();
    let text = std::fs::read_to_string(project.path("optimizations.example.yaml")).unwrap();
    let broken = text
        .replace("reward: signup", "reward: signups")
        .replace(
            "excluded_combinations: [{headline: Open source, cta_text: Book a demo}]",
            "excluded_combinations: [{headline: Ship faster, cta_text: Start free}]",
        )
        .replace("conversion_window: 24h}", "conversion_window: 24 hours}");
    project.write("optimizations.example.yaml", &broken);
    let out = train(&project, &["--all"]);
    assert_eq!(out.code, 3, "{out:?}");
    for needle in [
        "optimizations.hero.reward: metric `signups` does not exist",
        "excludes the baseline",
        "conversion_window",
        "hint:",
    ] {
        assert!(out.stderr.contains(needle), "{needle}: {}", out.stderr);
    }
}

#[test]
fn a_failing_sql_exits_4_and_names_the_metric() {
    let project = example_project();
    let text = std::fs::read_to_string(project.path("sql/metrics/signup.sql")).unwrap();
    project.write(
        "sql/metrics/signup.sql",
        &text.replace("FROM signups", "FROM signup_events"),
    );
    let out = train(&project, &["--optimization", "hero"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(out.stderr.contains("metric `signup`"), "{}", out.stderr);
    assert!(out.stderr.contains("signup_events"), "{}", out.stderr);
    assert!(!project.path("out/hero/allocation.csv").exists());

    // One broken optimization does not stop the other: a partial failure, exit 1.
    let out = train(&project, &["--all"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(project.path("out/checkout/allocation.csv").is_file());
    assert!(!project.path("out/hero/allocation.csv").exists());
}

#[test]
fn a_missing_warehouse_exits_4() {
    let project = example_project();
    std::fs::remove_dir_all(project.path("fixtures/warehouse")).unwrap();
    let out = train(&project, &["--all"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(
        out.stderr.contains("cannot open the warehouse"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_locked_state_store_exits_5() {
    let project = example_project();
    let _held = levered::state::acquire(
        &project.path(".levered/state.duckdb"),
        std::time::Duration::ZERO,
    )
    .unwrap();
    let out = train(&project, &["--all", "--lock-timeout", "1s"]);
    assert_eq!(out.code, 5, "{out:?}");
    assert!(
        out.stderr.contains("locked by another levered run (pid"),
        "{}",
        out.stderr
    );
}

#[test]
fn dry_run_prints_and_writes_nothing() {
    let project = example_project();
    let out = train(&project, &["--optimization", "hero", "--dry-run"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("p_best"), "{}", out.stdout);
    assert!(!project.path("out").exists());
    assert!(!project.path(".levered").exists());
}

#[test]
fn quiet_runs_print_nothing_and_json_is_parseable() {
    let project = example_project();
    let out = train(&project, &["--all", "-q"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "");
    assert!(!out.stderr.contains("run "), "{}", out.stderr);

    let out = train(&project, &["--all", "--format", "json", "--seed", "3"]);
    assert_eq!(out.code, 0, "{out:?}");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON on stdout");
    assert_eq!(json[0]["optimization"], "checkout");
    assert_eq!(json[1]["run"]["seed"], 3);
    // The second run at the same as_of reads only the batches that were not final.
    assert_eq!(json[1]["run"]["scan"]["mode"], "incremental");
}

#[test]
fn an_earlier_as_of_needs_full() {
    let project = example_project();
    assert_eq!(train(&project, &["--all", "-q"]).code, 0);
    let out = project.levered(&[
        "train",
        "--all",
        "--config",
        "optimizations.example.yaml",
        "--as-of",
        "2026-01-07T00:00:00Z",
    ]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(out.stderr.contains("add --full once"), "{}", out.stderr);
    let out = project.levered(&[
        "train",
        "--all",
        "-q",
        "--full",
        "--config",
        "optimizations.example.yaml",
        "--as-of",
        "2026-01-07T00:00:00Z",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    let rows = read_csv(&project.path("out/hero/allocation.csv"));
    assert!(
        rows[0]["run_id"].starts_with("20260107T000000Z-"),
        "{rows:?}"
    );
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let first = example_project();
    let second = example_project();
    let weights = |project: &Project| {
        let out = train(
            project,
            &["--all", "--seed", "5", "--format", "json", "--dry-run"],
        );
        assert_eq!(out.code, 0, "{out:?}");
        let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        json.as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["run"]["seed"].clone(),
                    o["run"]["arms"].clone(),
                    o["run"]["p_best_method"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    let a = weights(&first);
    assert_eq!(a, weights(&second));
    assert_eq!(a[0].0, 5);
}

#[test]
fn without_a_definitions_file_nothing_is_trained_and_the_example_is_only_suggested() {
    let project = example_project();
    let out = project.levered(&["train", "--all", "--as-of", AS_OF]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("no definitions file: optimizations.yaml is not in the current folder"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("--config optimizations.example.yaml"),
        "{}",
        out.stderr
    );
    assert!(!project.path("out").exists(), "the example was not trained");
    assert!(
        !project.path(".levered").exists(),
        "no state store was created"
    );
}

#[test]
fn a_lock_timeout_without_a_unit_and_zero_repetitions_are_usage_errors_with_hints() {
    let project = example_project();
    let out = train(&project, &["--all", "--lock-timeout", "10"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("--lock-timeout: `10` has no unit"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("hint: a whole number with its unit, e.g. 30s"),
        "{}",
        out.stderr
    );
    let scenario = crate::support::repo().join("examples/scenarios/stationary.yaml");
    let out = project.levered(&["simulate", scenario.to_str().unwrap(), "--repetitions", "0"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--repetitions"), "{}", out.stderr);
    assert!(
        !project.path("simulation").exists(),
        "nothing was simulated"
    );
}

#[test]
fn help_and_quiet_say_what_each_command_does() {
    let project = example_project();
    let out = project.levered(&["train", "--help"]);
    assert!(
        out.stdout
            .contains("Usage: levered train [OPTIONS] <--optimization <NAME>|--all>"),
        "{}",
        out.stdout
    );
    let out = project.levered(&["report", "--help"]);
    assert!(out.stdout.contains("4  no stored run"), "{}", out.stdout);
    assert!(!out.stdout.contains("state store locked"), "{}", out.stdout);
    let out = project.levered(&["train", "--config", "optimizations.example.yaml"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("<--optimization <NAME>|--all>"),
        "{}",
        out.stderr
    );
    // -q silences summaries, not the answer a reader asked for.
    assert_eq!(train(&project, &["--all", "-q"]).code, 0);
    let out = project.levered(&[
        "report",
        "-q",
        "--config",
        "optimizations.example.yaml",
        "-o",
        "hero",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("hero (run "), "{}", out.stdout);
}

#[test]
fn completions_load_in_bash_and_the_man_page_lists_every_command() {
    let project = Project::new();
    let out = project.levered(&["completions", "bash"]);
    assert_eq!(out.code, 0, "{out:?}");
    let script = project.write("levered.bash", &out.stdout);
    let bash = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && complete -p levered",
            script.display()
        ))
        .output()
        .expect("bash runs");
    let registered = String::from_utf8_lossy(&bash.stdout);
    assert!(
        registered.contains("_levered") && registered.ends_with("levered\n"),
        "{registered}"
    );
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = project.levered(&["completions", shell]);
        assert!(
            out.code == 0 && out.stdout.contains("levered"),
            "{shell}: {out:?}"
        );
    }
    assert_eq!(project.levered(&["completions", "tcsh"]).code, 2);
    let page = project.levered(&["man"]);
    assert_eq!(page.code, 0, "{page:?}");
    assert!(page.stdout.contains(".TH levered 1"), "{}", page.stdout);
    for command in [
        "train",
        "validate",
        "report",
        "history",
        "assign",
        "simulate",
        "generate",
        "completions",
    ] {
        assert!(page.stdout.contains(command), "{command} in the man page");
    }
}
