//! `wow-bench`: see `wow_harness::cli`.

fn main() -> std::process::ExitCode {
    wow_harness::cli::main()
}
