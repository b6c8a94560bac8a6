//! Operating levered unattended (README, "Security and operations"): names that would be paths,
//! pruning, leftovers of killed runs, signals, readers while a train runs and on read-only media,
//! times past the clock, files that are not UTF-8, and `validate` with no warehouse.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::Project;

const AS_OF: &str = "2026-01-02T00:00:00Z";

/// Ten visitors of each optimization on {color: red} at 10:00, five of them signed up at 10:30.
const WAREHOUSE: &str = "
CREATE TABLE exposures AS
  SELECT 'v' || CAST(i AS VARCHAR) AS anonymous_id, TIMESTAMP '2026-01-01 10:00:00' AS timestamp,
         o AS optimization_id, '{\"color\":\"red\"}' AS variant
  FROM range(10) AS t(i), (VALUES ('a_fast'), ('b_slow')) AS v(o);
CREATE TABLE signups AS
  SELECT 'v' || CAST(i AS VARCHAR) AS anonymous_id, TIMESTAMP '2026-01-01 10:30:00' AS created_at
  FROM range(5) AS t(i);";

const FAST: &str = "SELECT anonymous_id, created_at AS timestamp FROM signups";

/// Billions of hash computations per signup: runs for minutes unless it is cancelled.
const SLOW: &str = "SELECT s.anonymous_id, s.created_at AS timestamp FROM signups AS s, range(4000000000) AS r(i) WHERE hash(r.i + epoch(s.created_at)) = 42";

/// Two optimizations: `a_fast` on a plain metric, `b_slow` on `slow_sql`.
fn definitions(slow_sql: &str, extra: &str) -> String {
    format!(
        r#"
warehouse: {{path: warehouse.duckdb}}
{extra}
metrics:
  fast: {{type: bool, sql: "{FAST}"}}
  slow: {{type: bool, sql: "{slow_sql}"}}
optimizations:
  a_fast:
    status: live
    design_factors: {{color: [red, blue]}}
    reward: fast
    exposures: {{table: exposures}}
    attribution: {{conversion_window: 2h}}
    model: {{kind: mab}}
  b_slow:
    status: live
    design_factors: {{color: [red, blue]}}
    reward: slow
    exposures: {{table: exposures}}
    attribution: {{conversion_window: 2h}}
    model: {{kind: mab}}
"#
    )
}

fn project(slow_sql: &str, extra: &str) -> Project {
    let project = Project::new();
    project.warehouse(WAREHOUSE);
    project.write("levered.yaml", &definitions(slow_sql, extra));
    project
}

fn levered(project: &Project, args: &[&str]) -> crate::support::Output {
    let mut all = args.to_vec();
    all.extend(["--config", "levered.yaml"]);
    project.levered(&all)
}

fn train(project: &Project, extra: &[&str]) -> crate::support::Output {
    let mut args = vec!["train", "--as-of", AS_OF];
    args.extend_from_slice(extra);
    levered(project, &args)
}

/// Every entry under `dir`, relative to it, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let path = entry.path();
            found.push(path.strip_prefix(dir).unwrap().display().to_string());
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The runs the state store records for `optimization`: (outcome) per run.
fn stored_outcomes(project: &Project, optimization: &str) -> Vec<String> {
    let store = duckdb::Connection::open(project.path(".levered/state.duckdb")).unwrap();
    let mut statement = store
        .prepare("SELECT outcome FROM runs WHERE optimization = ? ORDER BY seq")
        .unwrap();
    statement
        .query_map([optimization], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn names_that_are_not_folder_names_are_refused_with_their_line_and_write_nothing() {
    let long = "x".repeat(300);
    for name in [
        "../../victim",
        "..",
        "/tmp/abs",
        "a\\0b",
        "-dash",
        ".hidden",
        long.as_str(),
    ] {
        let project = project(FAST, "");
        let yaml = definitions(FAST, "").replace("  a_fast:", &format!("  \"{name}\":"));
        project.write("levered.yaml", &yaml);
        let out = levered(&project, &["validate"]);
        assert_eq!(out.code, 3, "{name}: {out:?}");
        assert!(out.stdout.contains("levered.yaml:"), "{name}: {out:?}");
        assert!(out.stdout.contains("optimizations."), "{name}: {out:?}");
        assert!(
            out.stdout
                .contains("hint: use letters, digits, `_` and `-`"),
            "{name}: {out:?}"
        );
        let out = train(&project, &["--all"]);
        assert_eq!(out.code, 3, "{name}: {out:?}");
        assert_eq!(
            tree(project.dir.path()),
            ["levered.yaml", "warehouse.duckdb"],
            "{name}"
        );
    }
    // A metric name is checked the same way.
    let project = project(FAST, "");
    let yaml = definitions(FAST, "").replace("  fast: {", "  \"fa/st\": {");
    project.write(
        "levered.yaml",
        &yaml.replace("reward: fast", "reward: fa/st"),
    );
    let out = levered(&project, &["validate", "--offline"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stdout.contains("metrics.fa/st: `fa/st` is not a name"),
        "{out:?}"
    );
}

#[test]
fn pruning_removes_only_run_folders_and_leftovers_of_killed_runs_are_cleaned() {
    let project = project(FAST, "keep_runs: 1");
    let runs = project.path("out/a_fast/runs");
    std::fs::create_dir_all(runs.join("notes")).unwrap();
    std::fs::create_dir_all(runs.join("20251231T000000Z-01")).unwrap();
    // What a run killed with SIGKILL leaves: a staged file and a staged run folder.
    project.write("out/a_fast/.tmpDEAD01", "half a csv");
    project.write("out/a_fast/runs/.tmpDEAD02/allocation.csv", "half");
    for hour in [
        "2026-01-02T00:00:00Z",
        "2026-01-02T01:00:00Z",
        "2026-01-02T02:00:00Z",
    ] {
        let out = levered(&project, &["train", "-o", "a_fast", "--as-of", hour]);
        assert_eq!(out.code, 0, "{out:?}");
    }
    assert_eq!(
        tree(&project.path("out/a_fast")),
        [
            "allocation.csv",
            "report.csv",
            "runs",
            "runs/20251231T000000Z-01",
            "runs/20260102T020000Z-0003",
            "runs/20260102T020000Z-0003/allocation.csv",
            "runs/20260102T020000Z-0003/report.csv",
            "runs/20260102T020000Z-0003/run.json",
            "runs/notes",
        ]
    );
}

/// Starts `train --all`, waits until `a_fast` is written and `b_slow` is aggregating, sends
/// `signal`, and returns the exit code and how long the process took to stop.
fn interrupt_train(project: &Project, signal: i32) -> (Option<i32>, Duration) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_levered"))
        .args([
            "train",
            "--all",
            "--config",
            "levered.yaml",
            "--as-of",
            AS_OF,
        ])
        .current_dir(project.dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !project.path("out/a_fast/allocation.csv").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "a_fast never trained"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(child.try_wait().unwrap().is_none(), "b_slow was not slow");
    // SAFETY: sends a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    let sent = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status.code(), sent.elapsed());
        }
        if sent.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            return (None, sent.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_and_sigint_stop_a_run_between_writes() {
    for (signal, code) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let project = project(SLOW, "");
        let (exit, took) = interrupt_train(&project, signal);
        assert_eq!(exit, Some(code), "signal {signal}");
        assert!(
            took < Duration::from_secs(10),
            "the query was not cancelled: {took:?}"
        );
        // The run written before the signal stands; the interrupted one left nothing.
        assert_eq!(stored_outcomes(&project, "a_fast"), ["ok"]);
        assert!(stored_outcomes(&project, "b_slow").is_empty());
        let files = tree(&project.path("out"));
        assert!(files.iter().all(|f| f.starts_with("a_fast")), "{files:?}");
        assert!(files.iter().all(|f| !f.contains(".tmp")), "{files:?}");
        let state = tree(&project.path(".levered"));
        assert!(state.iter().all(|f| !f.contains(".tmp")), "{state:?}");
        // The lock is free: the next run starts at once.
        let out = train(&project, &["-o", "a_fast", "--lock-timeout", "0s"]);
        assert_eq!(out.code, 0, "{out:?}");
    }
}

/// Makes `dir` read-only for the guard's lifetime: a read-only bind mount where the process may
/// mount (root), else permissions.
struct ReadOnly<'a> {
    dir: &'a Path,
    mounted: bool,
}

impl<'a> ReadOnly<'a> {
    fn new(dir: &'a Path) -> ReadOnly<'a> {
        let run = |args: &[&str]| {
            Command::new(args[0])
                .args(&args[1..])
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let d = dir.to_str().unwrap();
        let mounted = run(&["mount", "--bind", d, d]);
        if mounted {
            assert!(run(&["mount", "-o", "remount,bind,ro", d, d]), "remount ro");
        } else {
            assert!(run(&["chmod", "-R", "a-w", d]));
        }
        assert!(
            std::fs::write(dir.join("probe"), "x").is_err(),
            "{d} is writable"
        );
        ReadOnly { dir, mounted }
    }
}

impl Drop for ReadOnly<'_> {
    fn drop(&mut self) {
        let d = self.dir.to_str().unwrap();
        if self.mounted {
            let _ = Command::new("umount").arg(d).status();
        } else {
            let _ = Command::new("chmod").args(["-R", "u+w", d]).status();
        }
    }
}

#[test]
fn readers_do_not_wait_for_a_train_and_work_on_read_only_media() {
    let project = project(FAST, "");
    assert_eq!(train(&project, &["-o", "a_fast"]).code, 0);
    let state = project.path(".levered/state.duckdb");
    {
        // A training run holds the lock and the store open for writing.
        let _lock = levered::state::acquire(&state, Duration::ZERO).unwrap();
        let _store = duckdb::Connection::open(&state).unwrap();
        let started = Instant::now();
        for command in ["report", "history"] {
            let out = levered(&project, &[command, "-o", "a_fast"]);
            assert_eq!(out.code, 0, "{command}: {out:?}");
            assert!(out.stdout.contains("red"), "{command}: {out:?}");
        }
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    // The project on read-only media: the definitions, the store and its snapshot.
    let media = tempfile::tempdir().unwrap();
    std::fs::copy(
        project.path("levered.yaml"),
        media.path().join("levered.yaml"),
    )
    .unwrap();
    std::fs::create_dir(media.path().join(".levered")).unwrap();
    for file in ["state.duckdb", "state.duckdb.snapshot"] {
        std::fs::copy(
            project.path(".levered").join(file),
            media.path().join(".levered").join(file),
        )
        .unwrap();
    }
    let before = tree(media.path());
    let _read_only = ReadOnly::new(media.path());
    for command in ["report", "history"] {
        let out = Command::new(env!("CARGO_BIN_EXE_levered"))
            .args([command, "-o", "a_fast", "--config", "levered.yaml"])
            .current_dir(media.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{command}: {out:?}");
    }
    assert_eq!(tree(media.path()), before);
}

#[test]
fn an_as_of_past_the_clock_is_refused_and_the_recovery_is_one_full_run() {
    let project = project(FAST, "");
    let out = levered(
        &project,
        &["train", "-o", "a_fast", "--as-of", "9999-12-31T23:59:59Z"],
    );
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("past the clock"), "{out:?}");
    assert!(out.stderr.contains("--allow-future"), "{out:?}");
    assert_eq!(
        tree(project.dir.path()),
        ["levered.yaml", "warehouse.duckdb"]
    );
    // Allowed on purpose, a typo of a year is then followed by an hourly run on the clock.
    let future = ["train", "-o", "a_fast", "--as-of", "2062-01-02T00:00:00Z"];
    let out = levered(&project, &[&future[..], &["--allow-future"]].concat());
    assert_eq!(out.code, 0, "{out:?}");
    let out = levered(&project, &["train", "-o", "a_fast"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(
        out.stderr.contains("is earlier than the last run's"),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains("one `levered train --full` without --as-of"),
        "{out:?}"
    );
    assert_eq!(
        levered(&project, &["train", "-o", "a_fast", "--full"]).code,
        0
    );
    let out = levered(&project, &["train", "-o", "a_fast"]);
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn a_definitions_file_that_is_not_utf8_names_its_line_and_column() {
    let project = Project::new();
    let file = project.path("levered.yaml");
    std::fs::write(&file, b"warehouse:\n  path: w\xffx\noptimizations: {}\n").unwrap();
    let out = project.levered(&["validate", "--config", "levered.yaml"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stdout
            .contains("levered.yaml:2:10: error: warehouse.path: is not UTF-8 text (byte 0xff)"),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("hint: save the file as UTF-8"),
        "{out:?}"
    );
    assert!(!out.stdout.contains("--config"), "{out:?}");
}

#[test]
fn generate_refuses_zero_days_without_panicking() {
    let project = Project::new();
    let out = project.levered(&["generate", "--days", "0", "--out", "w"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--days"), "{out:?}");
    assert!(!project.path("w").exists());
}

#[test]
fn validate_without_its_warehouse_says_invalid_in_every_format() {
    let project = Project::new();
    project.write("levered.yaml", &definitions(FAST, ""));
    let out = levered(&project, &["validate"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(out.stdout.contains("invalid: 1 error,"), "{out:?}");
    assert!(out.stdout.contains("cannot open the warehouse"), "{out:?}");
    let out = levered(&project, &["validate", "--format", "github"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("::error file=levered.yaml,line=")
                && l.contains("cannot open the warehouse")),
        "{out:?}"
    );
    let out = levered(&project, &["validate", "--format", "json"]);
    assert_eq!(out.code, 4, "{out:?}");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["valid"], false);
    assert_eq!(json["errors"], 1);
}
