//! The `carryover` binary: logging, parse, run, map the result to an exit code.

use carryover::cli::Cli;
use carryover::error::{Exit, exit_for};

fn main() {
    let cli = match Cli::parse_from_args(std::env::args_os()) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                Exit::Usage.code()
            } else {
                0
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CARRYOVER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    carryover::report::install_panic_hook();
    let code = match cli.run() {
        Ok(exit) => exit.code(),
        Err(e) => {
            eprintln!("carryover: {e:#}");
            exit_for(&e).code()
        }
    };
    std::process::exit(code);
}
