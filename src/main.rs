//! The `carryover` binary: logging, parse, run, map the result to an exit code.

use carryover::cli::{Cli, Format};
use carryover::error::{Exit, exit_for, json_error};

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
            // a command line that asked for JSON gets its usage error as JSON too
            let args: Vec<String> = std::env::args().collect();
            let wants_json = args.iter().any(|a| a == "--format=json")
                || args
                    .windows(2)
                    .any(|w| w[0] == "--format" && w[1] == "json");
            if code != 0 && wants_json {
                let message = e.to_string();
                let first = message
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("error: ");
                println!(
                    "{}",
                    serde_json::json!({"error": {"kind": "usage", "message": first, "exit_code": code}})
                );
            }
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
    let json = cli.format == Format::Json;
    let code = match cli.run() {
        Ok(exit) => exit.code(),
        Err(e) => {
            eprintln!("carryover: {e:#}");
            // with --format json the error is on stdout too, as JSON a program can read
            if json {
                println!("{}", json_error(&e));
            }
            exit_for(&e).code()
        }
    };
    std::process::exit(code);
}
