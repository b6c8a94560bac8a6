//! Operating levered unattended (README, "Security and operations"): names that would be paths,
//! pruning, leftovers of killed runs, signals, readers while a train runs and on read-only media,
//! times past the clock, files that are not UTF-8, and `validate` with no warehouse.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{red_blue, Project};

const AS_OF: &str = "2026-01-02T00:00:00Z";

/// Ten visitors of each optimization on {color: red} at 10:00, five of them signed up at 10:30.
const WAREHOUSE: &str = "
CREATE TABLE exposures AS
  SELECT 'v' || CAST(i AS VARCHAR) AS anonymous_id, TIMESTAMP '2026-01-01 10:00:00' AS timestamp,
         o AS optimization_id, '{\"color\":\"red\"}' AS variant
  FROM range(10) AS t(i), (VALUES ('a_fast'), ('b_slow'), ('c_after')) AS v(o);
CREATE TABLE signups AS
  SELECT 'v' || CAST(i AS VARCHAR) AS anonymous_id, TIMESTAMP '2026-01-01 10:30:00' AS created_at
  FROM range(5) AS t(i);";

const FAST: &str = "SELECT anonymous_id, created_at AS timestamp FROM signups";

/// 10^15 hash computations per signup: runs until it is cancelled.
const SLOW: &str = "SELECT s.anonymous_id, s.created_at AS timestamp FROM signups AS s, range(1000000000000000) AS r(i) WHERE hash(r.i + epoch(s.created_at)) = 42";

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
{}{}"#,
        red_blue("a_fast", "fast", "{table: exposures}"),
        red_blue("b_slow", "slow", "{table: exposures}"),
    )
}

/// `definitions` and a third optimization, `c_after`, trained after `b_slow`.
fn three_optimizations(slow_sql: &str) -> String {
    definitions(slow_sql, "") + &red_blue("c_after", "fast", "{table: exposures}")
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

/// Starts `train --all --format json` in `project`.
fn spawn_train(project: &Project) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_levered"))
        .args([
            "train",
            "--all",
            "--config",
            "levered.yaml",
            "--as-of",
            AS_OF,
        ])
        .args(["--format", "json"])
        .current_dir(project.dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// The CPU time `pid` has used, in clock ticks (utime + stime of /proc/<pid>/stat).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// Sends `signal` to `child` and waits (at most 30 s) for it to end: its exit code, its standard
/// output, and how long it took to stop.
fn stop(mut child: std::process::Child, signal: i32) -> (Option<i32>, String, Duration) {
    // SAFETY: sends a signal to a child this test started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    let sent = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if sent.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = sent.elapsed();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code(), stdout, took)
}

/// Starts `train --all`, waits until `a_fast` is written and `b_slow` has aggregated for a third
/// of a CPU second, sends `signal`, and returns what `stop` does.
fn interrupt_train(project: &Project, signal: i32) -> (Option<i32>, String, Duration) {
    let mut child = spawn_train(project);
    let started = Instant::now();
    while !project.path("out/a_fast/allocation.csv").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "a_fast never trained"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let written = cpu_ticks(child.id());
    while cpu_ticks(child.id()) < written + 33 {
        assert!(child.try_wait().unwrap().is_none(), "b_slow was not slow");
        std::thread::sleep(Duration::from_millis(20));
    }
    stop(child, signal)
}

/// The `outcome` of each optimization in `train --format json`'s answer, with its error or reason.
fn json_outcomes(stdout: &str) -> Vec<(String, String, String)> {
    let answer: serde_json::Value =
        serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let text = |v: &serde_json::Value, key: &str| v[key].as_str().unwrap_or_default().to_string();
    answer
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let detail = text(o, "error") + &text(o, "reason");
            (text(o, "optimization"), text(o, "outcome"), detail)
        })
        .collect()
}

#[test]
fn sigterm_and_sigint_stop_a_run_between_writes() {
    for (signal, code, name) in [
        (libc::SIGTERM, 143, "SIGTERM"),
        (libc::SIGINT, 130, "SIGINT"),
    ] {
        let project = project(SLOW, "");
        project.write("levered.yaml", &three_optimizations(SLOW));
        let (exit, stdout, took) = interrupt_train(&project, signal);
        assert_eq!(exit, Some(code), "{name}: {stdout}");
        assert!(
            took < Duration::from_secs(10),
            "the query was not cancelled: {took:?}"
        );
        // The run written before the signal stands, the interrupted one left nothing, the one after
        // it never started, and the answer says so.
        let outcomes = json_outcomes(&stdout);
        let said: Vec<(&str, &str)> = outcomes
            .iter()
            .map(|(o, k, _)| (o.as_str(), k.as_str()))
            .collect();
        assert_eq!(
            said,
            [
                ("a_fast", "trained"),
                ("b_slow", "failed"),
                ("c_after", "skipped")
            ]
        );
        assert!(
            outcomes[1].2.contains(&format!("stopped by {name}")),
            "{outcomes:?}"
        );
        assert_eq!(outcomes[2].2, format!("not started: stopped by {name}"));
        assert_eq!(stored_outcomes(&project, "a_fast"), ["ok"]);
        assert!(stored_outcomes(&project, "b_slow").is_empty());
        assert!(stored_outcomes(&project, "c_after").is_empty());
        let files = tree(&project.path("out"));
        assert!(files.iter().all(|f| f.starts_with("a_fast")), "{files:?}");
        assert!(files.iter().all(|f| !f.contains(".tmp")), "{files:?}");
        let state = tree(&project.path(".levered"));
        assert!(state.iter().all(|f| !f.contains(".tmp")), "{state:?}");
        // Readers see the run that stands; the lock is free: the next run starts at once.
        let report = levered(&project, &["report", "-o", "a_fast"]);
        assert_eq!(report.code, 0, "{report:?}");
        let out = train(&project, &["-o", "a_fast", "--lock-timeout", "0s"]);
        assert_eq!(out.code, 0, "{out:?}");
    }
}

#[test]
fn a_signal_while_waiting_for_the_lock_stops_the_run_at_once() {
    let project = project(FAST, "");
    let state = project.path(".levered/state.duckdb");
    let _held = levered::state::acquire(&state, Duration::ZERO).unwrap();
    let child = spawn_train(&project);
    // The run waits for the lock (60 s by default) in a loop that sleeps 100 ms.
    std::thread::sleep(Duration::from_millis(700));
    let (exit, _, took) = stop(child, libc::SIGTERM);
    assert_eq!(exit, Some(143));
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(!project.path("out").exists());
}

#[test]
fn a_store_deleted_and_rebuilt_replaces_the_run_folders_it_makes_again() {
    let project = project(FAST, "");
    assert_eq!(train(&project, &["-o", "a_fast"]).code, 0);
    let run = project.path("out/a_fast/runs/20260102T000000Z-0001");
    std::fs::write(run.join("notes.txt"), "an analyst's file").unwrap();
    std::fs::remove_dir_all(project.path(".levered")).unwrap();
    // The new store numbers its first run 1 again: the same run id, the same folder.
    let out = train(&project, &["-o", "a_fast"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(run.join("report.csv").exists() && !run.join("notes.txt").exists());
    assert_eq!(
        tree(&project.path("out/a_fast/runs")),
        [
            "20260102T000000Z-0001",
            "20260102T000000Z-0001/allocation.csv",
            "20260102T000000Z-0001/report.csv",
            "20260102T000000Z-0001/run.json"
        ]
    );
}

/// Makes `dir` read-only for the guard's lifetime: a read-only bind mount where the process may
/// mount (root), else permissions; `None` when neither makes it read-only (root without mount).
struct ReadOnly<'a> {
    dir: &'a Path,
    mounted: bool,
}

impl<'a> ReadOnly<'a> {
    fn new(dir: &'a Path) -> Option<ReadOnly<'a>> {
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
        let guard = ReadOnly { dir, mounted };
        if std::fs::write(dir.join("probe"), "x").is_ok() {
            let _ = std::fs::remove_file(dir.join("probe"));
            return None;
        }
        Some(guard)
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
            // `--lock-timeout` is accepted and has nothing to wait for.
            let out = levered(&project, &[command, "-o", "a_fast", "--lock-timeout", "1h"]);
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
    let Some(_read_only) = ReadOnly::new(media.path()) else {
        eprintln!(
            "skipped the read-only part: {} stays writable",
            media.path().display()
        );
        return;
    };
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
