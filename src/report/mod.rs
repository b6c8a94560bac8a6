//! The record of a run (`model`: imports nothing above the domain types), and its renderers, pure
//! functions of it: CSV files, a terminal table, JSON and an HTML page. `state/` persists it.

pub mod chart;
mod csv;
mod files;
mod html;
mod model;
mod table;

pub use csv::{
    allocation as allocation_csv, history as history_csv, number, parse as parse_csv,
    report as report_csv, Origin, ALLOCATION_HEADER, REPORT_HEADER,
};
pub use files::{inside, prune_runs, remove_leftovers, run_id, Staged};
pub use html::page as html_page;
pub use model::{
    AllocationRow, ArmReport, Diagnostics, GuardrailEstimate, HistoryRow, RunInfo, RunReport,
    ScanSummary, Winner,
};
pub use table::{diagnostics as diagnostics_text, history_table, srm_text, table};
