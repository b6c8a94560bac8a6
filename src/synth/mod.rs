//! Synthetic warehouses with known truth, for the example, tests and benchmarks.

mod generate;

pub use generate::{
    checkout_truth, generate, hero_rate, CHECKOUT_FLOWS, CHECKOUT_PRICES, END, HERO_CTAS,
    HERO_HEADLINES,
};
