fn main() {
    let status = levered::run(std::env::args_os());
    std::process::exit(status.code());
}
