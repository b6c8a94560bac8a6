//! `levered simulate`: the real pipeline against a synthetic warehouse over simulated hours, with
//! comparison policies, repeated; regret, traffic on the best arm, final allocation and holdout lift.

mod jobs;
pub(crate) mod memory;
mod page;
mod run;
mod scenario;
mod summary;

pub use jobs::simulate;
pub use run::{run, Trace};
pub use scenario::{Policy, Scenario, Truth};
pub use summary::{hourly_csv, summarize, summary_csv, table, PolicySummary};
