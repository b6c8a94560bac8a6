//! Shared helpers: temporary projects with a DuckDB warehouse built from SQL, and the binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

pub struct Project {
    pub dir: TempDir,
}

impl Project {
    /// An empty project folder.
    pub fn new() -> Project {
        Project {
            dir: tempfile::tempdir().expect("a temporary folder"),
        }
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Copies the example's metric SQL (`sql/metrics/`), which a copy of optimizations.example.yaml
    /// in the project's folder reads.
    pub fn copy_example_metrics(&self) {
        for entry in std::fs::read_dir(repo().join("sql/metrics")).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name();
            let text = std::fs::read_to_string(entry.path()).unwrap();
            self.write(&format!("sql/metrics/{}", name.to_string_lossy()), &text);
        }
    }

    /// Creates `warehouse.duckdb` in the project by running `sql`.
    pub fn warehouse(&self, sql: &str) -> PathBuf {
        let path = self.path("warehouse.duckdb");
        let connection = duckdb::Connection::open(&path).expect("a warehouse file");
        connection
            .execute_batch(sql)
            .expect("the warehouse SQL runs");
        drop(connection);
        path
    }

    pub fn write(&self, relative: &str, contents: &str) -> PathBuf {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Runs the levered binary in the project folder.
    pub fn levered(&self, args: &[&str]) -> Output {
        self.levered_with(args, &[])
    }

    /// Runs the levered binary in the project folder with extra environment variables.
    pub fn levered_with(&self, args: &[&str], environment: &[(&str, &str)]) -> Output {
        let output = Command::new(env!("CARGO_BIN_EXE_levered"))
            .args(args)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .envs(environment.iter().copied())
            .output()
            .expect("the levered binary runs");
        Output {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The definition of optimization `name` on one factor `color: [red, blue]`, a plain bandit with a
/// two-hour window, indented under `optimizations:`.
pub fn red_blue(name: &str, reward: &str, exposures: &str) -> String {
    format!(
        "  {name}:
    status: live
    design_factors: {{color: [red, blue]}}
    reward: {reward}
    exposures: {exposures}
    attribution: {{conversion_window: 2h}}
    model: {{kind: mab}}
"
    )
}

/// The repository root (where `optimizations.example.yaml` and `fixtures/` live).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Reads a CSV with a header into rows of name → value.
pub fn read_csv(path: &Path) -> Vec<std::collections::BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    levered::report::parse_csv(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs the aggregation of optimization `name` of a definitions file, arms numbered in level order;
/// `from_batch_us` as an incremental run's plan has it (`None`: everything).
pub fn aggregate(
    file: &Path,
    name: &str,
    as_of_us: i64,
    from_batch_us: Option<i64>,
) -> Result<levered::warehouse::ScanResult, levered::warehouse::WarehouseError> {
    let config = levered::config::load(file).expect("valid definitions");
    let optimization = &config.optimizations[name];
    let engine = levered::warehouse::open(&config.warehouse).expect("the warehouse opens");
    let arms = optimization.numbered_variants();
    engine.aggregate(&levered::warehouse::ScanPlan {
        optimization,
        arms,
        as_of: levered::time::Instant::from_micros(as_of_us),
        from_batch: from_batch_us.map(levered::time::Instant::from_micros),
    })
}

/// Trains every optimization of a definitions file in-process at `as_of`; every one must train.
pub fn train_all(
    file: &Path,
    as_of: chrono::DateTime<chrono::Utc>,
    full: bool,
) -> Vec<levered::report::RunReport> {
    use levered::train::{train, Outcome, TrainOptions};
    let config = levered::config::load(file).expect("valid definitions");
    let options = TrainOptions {
        optimizations: Vec::new(),
        all: true,
        as_of,
        trained_at: as_of,
        seed: None,
        dry_run: false,
        full,
        lock_timeout: std::time::Duration::from_secs(5),
    };
    let printer = levered::output::Printer::new(true, true, levered::output::Format::Text);
    train(&config, &options, &printer)
        .expect("the run starts")
        .into_iter()
        .map(|outcome| match outcome {
            Outcome::Trained(report) => *report,
            other => panic!("{other:?}"),
        })
        .collect()
}
