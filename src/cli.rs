//! The command line of CLI.md: the argument structs, and the dispatch to one module per
//! subcommand. Arguments are parsed from an iterator so the CLI is testable in-process.

mod capture;
mod check;
mod inspect;
mod output;
mod probe;
mod report;
mod restore;
mod service;
mod snapshots;
mod status;
mod userdata;

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::agent::Arch;
use crate::config::{Config, Target};
use crate::error::{Error, Exit};
use crate::report::EventPhase;
use crate::store::Store;
use crate::sys::Root;

#[derive(Debug, Parser)]
#[command(
    name = "carryover",
    version,
    about = "Carries a server's settings and data safely across a cloud Change OS",
    propagate_version = true
)]
pub struct Cli {
    /// Resolve every system path under this directory.
    #[arg(long, global = true, default_value = "/", value_name = "DIR")]
    pub root: PathBuf,
    /// The config file (default <root>/etc/carryover/config.toml, then config.d/*.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output format of the result.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the system state exactly as `capture` would record it (no data files).
    Inspect,
    /// Preflight: print findings; changes nothing.
    Check(CheckArgs),
    /// The pre hook: check, record state, snapshot data paths, verify, seal.
    Capture(CaptureArgs),
    /// The post hook: plan, apply (journaled, resumable), health checks, report.
    Restore(RestoreArgs),
    /// Where this machine stands in the cycle.
    Status(StatusArgs),
    /// The store's snapshots.
    Snapshots {
        #[command(subcommand)]
        command: SnapshotsCommand,
    },
    /// Send what is waiting in the outbox.
    Report(ReportArgs),
    /// Identify filesystem and volume signatures on block devices or image files.
    Probe {
        /// Block devices or image files to read (taken as given, not under --root).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// The Windows service that restores on the first boot of a new OS.
    Service {
        #[command(subcommand)]
        command: ServiceCommand,
    },
    /// Print a shell completion script (the packages install them).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), generated from this command line.
    Man {
        /// Write every page instead — carryover.1 and one per subcommand
        /// (carryover-status.1, carryover-snapshots-list.1, …) — into this folder.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Print the user-data for the cloud's Change OS call.
    Userdata {
        /// The OS family of the new OS: a cloud-config for Linux, a PowerShell script for
        /// Windows.
        #[arg(long, value_enum, default_value_t = Target::Linux)]
        os: Target,
        /// The agent for the new OS, put into the store first (a change to the other OS
        /// family needs that family's build: carryover.exe for Windows).
        #[arg(long, value_name = "FILE")]
        agent: Option<PathBuf>,
        /// The new OS's CPU architecture, whose agent the user-data installs (default:
        /// this machine's).
        #[arg(long, value_enum)]
        arch: Option<Arch>,
        #[command(flatten)]
        store: StoreArg,
    },
}

impl ValueEnum for Arch {
    fn value_variants<'a>() -> &'a [Self] {
        &Arch::ALL
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()))
    }
}

impl ValueEnum for Target {
    fn value_variants<'a>() -> &'a [Self] {
        &[Target::Linux, Target::Windows]
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(match self {
            Target::Linux => "linux",
            Target::Windows => "windows",
        }))
    }
}

#[derive(Debug, Args)]
pub struct StoreArg {
    /// The store: a directory (or file:// URL) on a data disk, or s3://bucket/prefix.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The store: a directory (or file:// URL) on a data disk, or s3://bucket/prefix.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Also print the last restore's report: every step, what changed, and why it is
    /// not `ready`.
    #[arg(long)]
    pub long: bool,
    /// Wait until a restore that runs or is due here has ended, then exit with its result
    /// (0 ready, 4 degraded, 1 failed).
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds (exit 1).
    #[arg(long, value_name = "SECONDS", requires = "wait")]
    pub timeout: Option<u64>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The OS family after the change (default [check] target, else linux): decides which
    /// findings apply (LVM or ext4 data for Windows, ReFS for Linux).
    #[arg(long, value_enum)]
    pub target: Option<Target>,
    /// Accept a finding by key (repeatable), as capture would.
    #[arg(long = "ack", value_name = "KEY")]
    pub ack: Vec<String>,
    /// Add a data path (repeatable), as capture would.
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub store: StoreArg,
}

#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// The OS family after the change (default [check] target, else linux): decides which
    /// findings apply and which agent the store must hold.
    #[arg(long, value_enum)]
    pub target: Option<Target>,
    /// Accept a preflight finding by key (repeatable).
    #[arg(long = "ack", value_name = "KEY")]
    pub ack: Vec<String>,
    /// Add a data path (repeatable).
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Read and hash every blob of every pack first: what is damaged is stored again
    /// from the source files instead of being referenced by the new snapshot.
    #[arg(long)]
    pub heal: bool,
    /// Also keep this agent in the store (repeatable): another architecture's build, or
    /// carryover.exe for a change to Windows; kept under its platform's key.
    #[arg(long = "agent", value_name = "FILE")]
    pub agents: Vec<PathBuf>,
    #[command(flatten)]
    pub store: StoreArg,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The snapshot to restore (default: the newest of this instance).
    #[arg(long, value_name = "ID")]
    pub snapshot: Option<String>,
    #[command(flatten)]
    pub store: StoreArg,
    /// Print the plan and what each step would change; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Restore only when one is due (for the boot-time unit): this system did not take
    /// the newest snapshot of its instance, and has not restored it yet.
    #[arg(long, conflicts_with = "dry_run")]
    pub if_due: bool,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotsCommand {
    /// List the snapshots.
    List(StoreArg),
    /// Show one snapshot's manifest and state.
    Show {
        /// A snapshot id, a unique prefix of one, or `latest` (this instance's newest).
        id: String,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Re-read every object and check every checksum.
    Verify {
        /// A snapshot id, a unique prefix of one, or `latest` (default: every snapshot).
        id: Option<String>,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Forget snapshots (never the newest of an instance); `prune` then frees their data.
    Forget {
        /// Snapshot ids, unique prefixes of them, or `latest`.
        #[arg(required_unless_present = "keep_last", conflicts_with = "keep_last")]
        ids: Vec<String>,
        /// Keep the N newest snapshots of each instance and forget the others.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        keep_last: Option<u64>,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Remove the packs, indexes and objects no remaining snapshot needs; rewrite packs
    /// that are mostly unneeded.
    Prune(StoreArg),
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Register the service (started at every boot; restores when one is due).
    Install,
    /// Stop and remove the service.
    Uninstall,
    /// Whether the service is installed and running.
    Status,
    /// What the service manager starts (not for people).
    #[command(hide = true)]
    Run,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Send one event by hand (phase:state, e.g. restore:succeeded).
    #[arg(long)]
    pub event: Option<String>,
    /// How long to keep trying (default [report] send_timeout_seconds).
    #[arg(long, value_name = "SECONDS")]
    pub wait: Option<u64>,
    /// Write the last restore's report as a self-contained HTML page to FILE (`-`:
    /// standard output) instead of sending events; only a page is replaced.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

/// Writes `cmd`'s manual page and one per subcommand, named as the pages refer to each
/// other (`carryover-snapshots-list.1`), into `dir` (0644).
fn manual_pages(cmd: &clap::Command, dir: &std::path::Path) -> Result<()> {
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        // clap names are 'static (without its `string` feature); a handful, once
        let name: &'static str =
            Box::leak(format!("{}-{}", cmd.get_name(), sub.get_name()).into_boxed_str());
        manual_pages(&sub.clone().name(name), dir)?;
    }
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    let page = dir.join(format!("{}.1", cmd.get_name()));
    crate::sys::write_atomic(&page, &out, 0o644)
        .map_err(|e| Error::Usage(format!("--dir {}: {e}", dir.display())))?;
    Ok(())
}

/// What every subcommand gets: the parsed globals, the root and the config.
pub struct Ctx {
    pub root: Root,
    pub config: Config,
    pub format: Format,
}

impl Ctx {
    /// Opens the store named on the command line or in the config, with the store key
    /// when one is configured (its file is read under the root).
    pub fn open_store(&self, cli_url: Option<&str>, create: bool) -> Result<(String, Store)> {
        crate::store::open_configured(&self.root, &self.config, cli_url, create)
    }
}

impl Ctx {
    /// The snapshot a user named: an id, a unique prefix of one, or `latest` (the newest
    /// of this machine's instance).
    pub fn resolve_snapshot(&self, store: &Store, spec: &str) -> Result<crate::store::Manifest> {
        store.resolve(spec, || {
            let g = crate::state::Gather::new(&self.root, &self.config);
            crate::state::identity::instance(&g).0
        })
    }
}

impl Cli {
    /// Parses arguments (the first is the program name).
    pub fn parse_from_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        Cli::try_parse_from(args)
    }

    /// A capture or a restore that fails before it could even read its configuration
    /// still tells the orchestrator, through what the config files that do parse name.
    fn report_early_failure(&self, root: &Root, e: &anyhow::Error) {
        let phase = match &self.command {
            Command::Capture(_) => EventPhase::Capture,
            Command::Restore(a) if !a.dry_run => {
                let old_os = crate::local::LocalState::load(root).is_ok_and(|l| l.took_any());
                if old_os {
                    return;
                }
                EventPhase::Restore
            }
            _ => return,
        };
        let config = Config::load_lenient(root, self.config.as_deref());
        let g = crate::state::Gather::new(root, &config);
        let (instance, _, _) = crate::state::identity::instance(&g);
        crate::report::Reporter::new(root, &config, instance.as_deref()).failed(phase, None, e);
    }

    /// Runs the command and returns the exit code it earned.
    pub fn run(self) -> Result<Exit> {
        // what is generated from the command line itself needs no root or config
        match &self.command {
            Command::Completions { shell } => {
                let mut cmd = <Cli as clap::CommandFactory>::command();
                let mut out = Vec::new();
                clap_complete::generate(*shell, &mut cmd, "carryover", &mut out);
                std::io::Write::write_all(&mut std::io::stdout(), &out)?;
                return Ok(Exit::Success);
            }
            Command::Man { dir } => {
                let cmd = <Cli as clap::CommandFactory>::command();
                match dir {
                    Some(dir) => {
                        let mut cmd = cmd;
                        cmd.build();
                        manual_pages(&cmd, dir)?;
                    }
                    None => {
                        let mut out = Vec::new();
                        clap_mangen::Man::new(cmd).render(&mut out)?;
                        std::io::Write::write_all(&mut std::io::stdout(), &out)?;
                    }
                }
                return Ok(Exit::Success);
            }
            _ => {}
        }
        let root = Root::new(crate::sys::default_root(&self.root))
            .map_err(|e| Error::Usage(format!("--root: {e}")))?;
        let config = match Config::load(&root, self.config.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                let e = anyhow::Error::from(e);
                self.report_early_failure(&root, &e);
                return Err(e);
            }
        };
        let ctx = Ctx {
            root,
            config,
            format: self.format,
        };
        match self.command {
            Command::Completions { .. } | Command::Man { .. } => {
                unreachable!("handled above")
            }
            Command::Inspect => inspect::run(&ctx),
            Command::Capture(a) => capture::run(&ctx, a),
            Command::Restore(a) => restore::run(&ctx, a),
            Command::Status(a) => status::run(&ctx, a),
            Command::Snapshots { command } => snapshots::run(&ctx, command),
            Command::Service { command } => service::run(&ctx, command),
            Command::Check(a) => check::run(&ctx, a),
            Command::Report(a) => report::run(&ctx, a),
            Command::Probe { paths } => probe::run(&ctx, &paths),
            Command::Userdata {
                os,
                agent,
                arch,
                store,
            } => userdata::run(&ctx, os, arch, agent.as_deref(), store),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn globals_go_anywhere() {
        let c =
            Cli::parse_from_args(["carryover", "inspect", "--root", "/tmp", "--format", "json"])
                .unwrap();
        assert_eq!(c.root, PathBuf::from("/tmp"));
        assert_eq!(c.format, Format::Json);
        let c = Cli::parse_from_args([
            "carryover",
            "capture",
            "--ack",
            "a",
            "--ack",
            "b",
            "--path",
            "/srv",
        ])
        .unwrap();
        match c.command {
            Command::Capture(a) => {
                assert_eq!(a.ack, vec!["a", "b"]);
                assert_eq!(a.paths, vec![PathBuf::from("/srv")]);
            }
            _ => panic!(),
        }
    }
}
