//! Synthetic warehouses with known truth, for the example, tests and benchmarks.

mod bench;
mod generate;

pub use bench::{bench_rate, generate_bench, BENCH_ARMS};
pub use generate::{
    checkout_truth, generate, hero_rate, CHECKOUT_FLOWS, CHECKOUT_PRICES, END, HERO_CTAS,
    HERO_HEADLINES,
};
