//! levered has no build step of its own. This script exists so that the `[build-dependencies]` of
//! Cargo.toml take part in the build: they pin the features of crates that DuckDB's build script
//! uses, so that `--features spark` does not change them and DuckDB's C++ is compiled once for
//! both engines (see Cargo.toml).
fn main() {
    println!("cargo::rerun-if-changed=build.rs");
}
