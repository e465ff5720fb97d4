//! The system state that survives a Change OS: what `inspect` prints and `capture`
//! records. Each section lives in its own module with a pure parser and a `gather`
//! that reads the real files under the root; a file that cannot be read or parsed is
//! named in `problems` and the rest goes on.

pub mod accounts;
pub mod appfiles;
pub mod baseline;
pub mod clock;
pub mod configs;
pub mod cron;
pub mod dns;
pub mod files;
pub mod grammar;
pub mod homes;
pub mod hosts;
pub mod identity;
pub mod ini;
pub mod logins;
pub mod mounts;
pub mod packages;
pub mod repos;
pub mod services;
pub mod ssh;
pub mod sshd;
pub mod sudoers;
pub mod sysctl;
pub mod windows;

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::sys::Root;

/// The version of the state format; bumped when a field changes meaning. Old states keep
/// loading: every field has a default.
pub const STATE_FORMAT: u32 = 1;

/// Everything `capture` records about the system, bulk data aside.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SystemState {
    pub format: u32,
    pub identity: identity::Identity,
    pub dns: dns::Dns,
    pub hosts: Vec<hosts::HostsEntry>,
    pub mounts: Vec<mounts::MountEntry>,
    pub lvm: mounts::Lvm,
    /// The disks and what is on them (system disk, data disks, mounts).
    pub disks: crate::disks::Layout,
    pub users: Vec<accounts::User>,
    pub groups: Vec<accounts::Group>,
    /// Every account's name and id, system accounts included (`mysql` 112): files of theirs
    /// on a data disk keep their owner by name on the new OS.
    pub ids: accounts::IdNames,
    pub services: services::Services,
    pub cron: Vec<cron::CronTable>,
    pub ssh_host_keys: Vec<ssh::HostKey>,
    /// authorized_keys of root and the captured users whose homes are on the system disk.
    pub logins: logins::Logins,
    /// sshd's access settings (port, root and password logins, who may log in).
    pub sshd: sshd::Sshd,
    /// The sudo rules of the captured users and groups.
    pub sudoers: sudoers::Sudoers,
    /// The captured users' homes on the system disk, their sizes, and whether capture
    /// takes them.
    pub homes: Vec<homes::Home>,
    pub timezone: Option<String>,
    pub ntp: clock::Ntp,
    pub sysctl: Vec<sysctl::SysctlFile>,
    pub packages: packages::Packages,
    /// Third-party package repositories, their keys and pins.
    pub repos: repos::Repos,
    /// Configuration files the user changed or added (private ones' content in secrets).
    pub configs: Vec<configs::ConfigFile>,
    /// The `/etc/*/*-enabled` folders and what they held.
    pub enabled_dirs: Vec<configs::EnabledDir>,
    /// Folders on the system disk holding files no package owns (and databases).
    pub app_dirs: Vec<appfiles::AppDir>,
    /// What ran on the live old OS: services and listening ports (the readiness check).
    pub baseline: baseline::Baseline,
    /// Windows only: DNS per adapter, services.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub windows: Option<windows::WindowsState>,
    /// Files that could not be read or understood; the state is partial for them.
    pub problems: Vec<Problem>,
}

/// Private material: stored root-only, never printed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Secrets {
    pub ssh_host_keys: Vec<ssh::PrivateKey>,
    pub shadow: Vec<accounts::ShadowEntry>,
    /// The orchestrator's token (`[report] token_file`), so the new OS can report without
    /// a secret in its user-data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_token: Option<ReportToken>,
    /// Private configuration files (mode without read for others, private keys).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<files::FileCopy>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ReportToken {
    /// Where it was on the old OS.
    pub path: String,
    pub token: String,
}

pub use crate::error::Problem;

/// What the section gatherers share: the root, the config and the list of problems.
pub struct Gather<'a> {
    pub root: &'a Root,
    pub config: &'a Config,
    problems: RefCell<Vec<Problem>>,
}

impl<'a> Gather<'a> {
    pub fn new(root: &'a Root, config: &'a Config) -> Self {
        Gather {
            root,
            config,
            problems: RefCell::new(Vec::new()),
        }
    }

    /// Notes a problem with an in-root path.
    pub fn problem(&self, path: impl AsRef<Path>, error: impl std::fmt::Display) {
        self.problems.borrow_mut().push(Problem {
            path: path.as_ref().display().to_string(),
            error: error.to_string(),
        });
    }

    /// Reads an in-root text file; absent → `None`; unreadable or not UTF-8 → a problem
    /// and `None`.
    pub fn read(&self, abs: &str) -> Option<String> {
        self.read_path(Path::new(abs))
    }

    pub fn read_path(&self, abs: &Path) -> Option<String> {
        match crate::sys::read_opt(&self.root.follow(abs)) {
            Ok(None) => None,
            Ok(Some(bytes)) => match String::from_utf8(bytes) {
                Ok(s) => Some(s),
                Err(_) => {
                    self.problem(abs, "not valid UTF-8 text");
                    None
                }
            },
            Err(e) => {
                self.problem(abs, e);
                None
            }
        }
    }

    /// The entries of an in-root directory (host paths), sorted; problems noted.
    pub fn list(&self, abs: &str) -> Vec<PathBuf> {
        match crate::sys::list_dir(&self.root.follow(abs)) {
            Ok(v) => v,
            Err(e) => {
                self.problem(abs, e);
                Vec::new()
            }
        }
    }

    /// The in-root name of a host path.
    pub fn inner(&self, host: &Path) -> PathBuf {
        self.root.inner(host)
    }

    pub fn exists(&self, abs: &str) -> bool {
        std::fs::symlink_metadata(self.root.path(abs)).is_ok()
    }

    fn take_problems(&self) -> Vec<Problem> {
        std::mem::take(&mut self.problems.borrow_mut())
    }
}

/// Reads the whole state of the system under `root`.
pub fn gather(root: &Root, config: &Config) -> (SystemState, Secrets) {
    let g = Gather::new(root, config);
    let mut secrets = Secrets::default();
    let identity = identity::gather(&g);
    let hosts = hosts::gather(&g, &identity.hostname);
    let (users, groups, shadow) = accounts::gather(&g);
    let ids = accounts::id_names(&g);
    secrets.shadow = shadow;
    let (ssh_host_keys, private) = ssh::gather(&g);
    let found = crate::disks::discover(root);
    secrets.ssh_host_keys = private;
    if config.report_url.is_some()
        && let Ok(Some(b)) = crate::sys::read_opt(&root.follow(&config.token_file))
    {
        secrets.report_token = Some(ReportToken {
            path: config.token_file.display().to_string(),
            token: String::from_utf8_lossy(&b).trim().to_string(),
        });
    }
    let fstab = mounts::gather(&g);
    let on_system_disk = |p: &Path| {
        crate::disks::on_system_disk(
            found.mounts.as_deref().unwrap_or_default(),
            &found.layout,
            &fstab,
            p,
        )
    };
    let logins = logins::gather(&g, &users, &on_system_disk);
    let sudoers = sudoers::gather(&g, &users, &groups);
    let homes = homes::gather(
        &g,
        &users,
        &on_system_disk,
        config.capture_homes,
        &config.data_paths,
    );
    let packages = packages::gather(&g);
    let owned_etc = packages::owned_under(&g, &packages.manager, "/etc/");
    let repos = repos::gather(&g, &ids, &owned_etc);
    let (configs, private_configs) = configs::gather(&g, &ids, &packages, &owned_etc);
    secrets.configs = private_configs;
    let app_dirs = appfiles::gather(&g, &packages.manager, &on_system_disk, &config.data_paths);
    let state = SystemState {
        format: STATE_FORMAT,
        dns: dns::gather(&g),
        hosts,
        mounts: fstab,
        lvm: mounts::Lvm {
            volume_groups: found.volume_groups,
        },
        disks: found.layout,
        users,
        ids,
        groups,
        services: services::gather(&g),
        cron: cron::gather(&g),
        ssh_host_keys,
        logins,
        sshd: sshd::gather(&g),
        sudoers,
        homes,
        timezone: clock::gather_timezone(&g),
        ntp: clock::gather_ntp(&g),
        sysctl: sysctl::gather(&g),
        packages,
        repos,
        configs,
        enabled_dirs: configs::enabled_dirs(&g),
        app_dirs,
        baseline: baseline::gather(&g),
        identity,
        windows: windows::gather(&g),
        problems: Vec::new(),
    };
    let mut state = state;
    // on Windows the adapters are the truth (a resolv.conf seen through Wine's Z: is not)
    if let Some(w) = &state.windows
        && !w.dns.is_empty()
    {
        let (ns, search) = w.nameservers_and_search();
        state.dns.nameservers = ns;
        state.dns.search = search;
        state.dns.manager = "windows".into();
        state.dns.configured_by = vec!["GetAdaptersAddresses".into()];
    }
    // and the portable sections say what Windows has, so a Windows snapshot restores
    // its time zone and time servers on Linux
    if let Some(w) = &state.windows {
        if state.timezone.is_none() {
            state.timezone = w
                .timezone
                .as_deref()
                .and_then(windows::iana_zone)
                .map(str::to_string);
        }
        if let Some(ntp) = w
            .ntp
            .as_ref()
            .filter(|n| n.kind.eq_ignore_ascii_case("NTP"))
            && state.ntp.servers.is_empty()
        {
            state.ntp.manager = "w32time".into();
            state.ntp.servers = windows::ntp_hosts(&ntp.server)
                .into_iter()
                .filter(|h| h != windows::DEFAULT_NTP)
                .map(|host| clock::NtpSource {
                    kind: "server".into(),
                    host,
                    options: vec!["iburst".into()],
                })
                .collect();
        }
        if state.mounts.is_empty() {
            // (a volume whose disk could not be read raw is left out: check says so)
            state.mounts = w.linux_mounts().0;
        }
        if state.identity.os.id.is_empty() {
            state.identity.os.id = "windows".into();
            state.identity.os.version_id = Some(w.computer.version.clone());
            state.identity.os.pretty_name = Some(w.computer.product.clone());
        }
    }
    state.problems = g.take_problems();
    (state, secrets)
}

/// Splits a line into whitespace-separated words after dropping a `#` comment.
pub fn words(line: &str) -> Vec<&str> {
    let line = line.split('#').next().unwrap_or("");
    line.split_whitespace().collect()
}

/// Strips one level of matching single or double quotes.
pub fn unquote(s: &str) -> &str {
    let s = s.trim();
    for q in ['"', '\''] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return &s[1..s.len() - 1];
        }
    }
    s
}

/// Pushes `item` unless it is already there (keeps first-seen order).
pub fn push_unique(list: &mut Vec<String>, item: &str) {
    if !item.is_empty() && !list.iter().any(|x| x == item) {
        list.push(item.to_string());
    }
}
