//! The `carryover` binary: logging, parse, run, map the result to an exit code.

use carryover::cli::{Cli, Command, Format};
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
                // the message without the usage lines, on one line ("the following
                // required arguments were not provided: --wait")
                let message = e.to_string();
                let first = message
                    .lines()
                    .take_while(|l| !l.trim().is_empty() && !l.starts_with("Usage:"))
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join(" ");
                let first = first.trim_start_matches("error: ");
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
    // colour only on a terminal, and never when NO_COLOR is set (no-color.org)
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    // a restore (the first-boot one above all) also logs to a file an operator finds
    // after the change: /var/log/carryover/restore.log, root-only, at info level
    let log_file = match &cli.command {
        Command::Restore(a) if !a.dry_run => Some(carryover::restore::document::LazyLog::new(
            &cli.root,
            "restore.log",
        )),
        _ => None,
    };
    use tracing_subscriber::prelude::*;
    let stderr_layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(false)
        .with_filter(
            tracing_subscriber::EnvFilter::try_from_env("CARRYOVER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        );
    let file_layer = log_file.map(|f| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::sync::Mutex::new(f))
            .with_ansi(false)
            .with_target(false)
            .with_filter(tracing_subscriber::EnvFilter::new("info"))
    });
    tracing_subscriber::registry()
        .with(stderr_layer)
        .with(file_layer)
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
