//! A small world for the stage tests: optimization `hero` (arms red and blue, optionally a 10%
//! holdout) over simulated visitors in the in-memory engine the simulator uses, a state store and an
//! output folder in a temporary directory.

use std::path::Path;

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::domain::ContextKey;
use crate::output::{Format, Printer};
use crate::simulate::memory::{Memory, Unit};
use crate::state::StateStore;
use crate::time::{Instant, Span};

use super::evidence::{read, Evidence};
use super::plan::{plan, Planned};
use super::run::Job;
use super::TrainOptions;

pub(super) const HOUR: Span = Span::from_seconds(3_600);

pub(super) struct Fixture {
    pub(super) dir: tempfile::TempDir,
    pub(super) config: Config,
    pub(super) memory: Memory,
    pub(super) store: StateStore,
    pub(super) options: TrainOptions,
    pub(super) printer: Printer,
}

impl Fixture {
    /// `hero` with `model` (YAML flow mapping), trained as of 2026-01-02T00:00:00Z on `per_hour`
    /// visitors an hour from 2026-01-01T00:00:00Z: alternately red and blue (every tenth held out
    /// when the model has a holdout); red converts one visitor in ten, blue three, an hour after the
    /// exposure.
    pub(super) fn new(model: &str, per_hour: i64) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!(
            "warehouse: {{path: warehouse}}
state: state.duckdb
output_dir: out
metrics:
  signup: {{type: bool, sql: 'SELECT anonymous_id, created_at AS timestamp FROM signups'}}
optimizations:
  hero:
    status: live
    design_factors: {{color: [red, blue]}}
    reward: signup
    exposures: {{table: exposures}}
    attribution: {{conversion_window: 2h, unit: visitor_batch}}
    model: {model}
"
        );
        let config = crate::config::parse(&dir.path().join("levered.yaml"), &yaml).unwrap();
        let store = StateStore::open(&config.state).unwrap();
        let as_of: DateTime<Utc> = "2026-01-02T00:00:00Z".parse().unwrap();
        let holdout = config.optimizations["hero"].model.holdout.is_some();
        let start = Instant::from_utc(as_of) - HOUR * 24;
        let units = (0..24 * per_hour)
            .map(|i| {
                let exposure = start + Span::from_micros(i * HOUR.micros() / per_hour);
                let blue = i % 2 == 1;
                let converts = (i / 2) % 10 < if blue { 3 } else { 1 };
                Unit {
                    exposure,
                    levels: vec![if blue { "blue" } else { "red" }.to_string()],
                    context: ContextKey::pooled(),
                    holdout: holdout && i % 10 == 0,
                    reward: converts.then_some((exposure + HOUR, 1.0)),
                    guardrails: Vec::new(),
                }
            })
            .collect();
        let options = TrainOptions {
            optimizations: vec!["hero".into()],
            all: false,
            as_of,
            trained_at: as_of,
            seed: Some(7),
            dry_run: false,
            full: false,
            lock_timeout: std::time::Duration::ZERO,
        };
        Fixture {
            dir,
            config,
            memory: Memory { units },
            store,
            options,
            printer: Printer::new(true, true, Format::Text),
        }
    }

    /// Plans the run and reads its evidence (stages 1 and 2, on the in-memory engine), then hands
    /// them to `then` with the job and the store.
    pub(super) fn staged<R>(
        &mut self,
        then: impl FnOnce(Job<'_>, &mut Planned<'_>, &Evidence, &mut StateStore) -> R,
    ) -> R {
        let Fixture {
            config,
            memory,
            store,
            options,
            printer,
            ..
        } = self;
        let job = Job {
            config,
            optimization: &config.optimizations["hero"],
            options,
            printer,
        };
        let mut planned = plan(config, job.optimization, store, options).unwrap();
        let evidence = read(job.optimization, memory, store, &planned, printer).unwrap();
        then(job, &mut planned, &evidence, store)
    }

    pub(super) fn path(&self, relative: &str) -> std::path::PathBuf {
        Path::new(self.dir.path()).join(relative)
    }
}
