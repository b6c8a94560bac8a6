//! Synthetic warehouses with known truth, for the example, tests and benchmarks.

mod bench;
mod generate;

pub use bench::{bench_rate, write_bench_warehouse, BENCH_ARMS};
pub use generate::{
    checkout_truth, hero_rate, write_example_warehouse, CHECKOUT_FLOWS, CHECKOUT_PRICES, END,
    HERO_CTAS, HERO_HEADLINES,
};
