//! The carryover command line as tests build it — `Cmd::new("capture").root(&old.dir)
//! .store(&store).json().run()` — shared by the integration tests and the Windows tests
//! (each includes it with `#[path]`). The including module provides `agent_bin()`,
//! `runner_argv()`, `agent_command()`, `clean_env()` and `output()`: how this test run
//! starts the agent.

use std::path::Path;
use std::process::{Command, Output};

/// A carryover command line, built as a user would type it:
/// `Cmd::new("capture").root(&old.dir).store(&store).json().run()`.
pub struct Cmd {
    prefix: Vec<std::ffi::OsString>,
    args: Vec<std::ffi::OsString>,
    env: Vec<(String, String)>,
}

impl Cmd {
    pub fn new(command: &str) -> Cmd {
        Cmd {
            prefix: Vec::new(),
            args: command.split(' ').map(Into::into).collect(),
            env: Vec::new(),
        }
    }

    /// Words that run the binary: `setpriv --reuid 65534 …`, or
    /// `sh -c 'ulimit -v N; exec "$@"' sh` (the binary and its arguments follow).
    pub fn under(mut self, prefix: &[&str]) -> Cmd {
        self.prefix = prefix.iter().map(Into::into).collect();
        self
    }

    pub fn config(self, file: impl AsRef<Path>) -> Cmd {
        self.arg("--config").arg(file.as_ref())
    }

    pub fn arg(mut self, a: impl AsRef<std::ffi::OsStr>) -> Cmd {
        self.args.push(a.as_ref().to_os_string());
        self
    }

    pub fn args(mut self, list: &[&str]) -> Cmd {
        self.args.extend(list.iter().map(Into::into));
        self
    }

    pub fn root(self, dir: impl AsRef<Path>) -> Cmd {
        self.arg("--root").arg(dir.as_ref())
    }

    pub fn store(self, dir: impl AsRef<Path>) -> Cmd {
        self.arg("--store").arg(dir.as_ref())
    }

    /// An environment variable for the run (`carryover_env`'s clean environment otherwise).
    pub fn env(mut self, key: &str, value: &str) -> Cmd {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Environment variables for the run, as a list.
    pub fn envs(mut self, list: &[(&str, String)]) -> Cmd {
        self.env
            .extend(list.iter().map(|(k, v)| (k.to_string(), v.clone())));
        self
    }

    pub fn json(self) -> Cmd {
        self.args(&["--format", "json"])
    }

    /// The process to start (to spawn it, or to set its stdio).
    pub fn command(&self) -> Command {
        let mut c = match self.prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).args(super::runner_argv(&super::agent_bin()));
                c
            }
            None => super::agent_command(),
        };
        c.args(&self.args);
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        super::clean_env(&mut c, &env);
        c
    }

    pub fn run(self) -> Output {
        super::output(&mut self.command())
    }
}
