//! The configuration: `config.toml` then `config.d/*.toml` in name order, read as
//! all-optional fragments, merged, then validated into settings. A typo or a wrong type
//! is an error that names the file, the line and the key — never a silent default.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::sys::Root;

/// The OS family a server changes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Linux,
    Windows,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Target::Linux => "linux",
            Target::Windows => "windows",
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fragment {
    store: Option<StoreFragment>,
    data: Option<DataFragment>,
    check: Option<CheckFragment>,
    report: Option<ReportFragment>,
    identity: Option<IdentityFragment>,
    hooks: Option<HooksFragment>,
    capture: Option<CaptureFragment>,
    restore: Option<RestoreFragment>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreFragment {
    expected: Option<bool>,
    not_before: Option<String>,
    packages: Option<String>,
    ready_timeout_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFragment {
    url: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    encryption_key_file: Option<String>,
    connections: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DataFragment {
    paths: Option<Vec<String>>,
    exclude: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckFragment {
    target: Option<Target>,
    ack: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportFragment {
    url: Option<String>,
    token_file: Option<String>,
    send_timeout_seconds: Option<u64>,
    budget_seconds: Option<u64>,
    request_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityFragment {
    metadata_url: Option<String>,
    timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HooksFragment {
    timeout_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaptureFragment {
    password_hashes: Option<bool>,
    homes: Option<bool>,
}

/// Where snapshots go.
#[derive(Debug, Clone, Serialize)]
pub struct StoreSettings {
    pub url: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    #[serde(skip)]
    pub access_key_id: Option<String>,
    #[serde(skip)]
    pub secret_access_key: Option<String>,
    pub encryption_key_file: Option<PathBuf>,
    /// `[store] connections`: concurrent transfers to an S3 store.
    pub connections: usize,
}

/// `[store] connections` when the config does not say. Object storage caps each
/// connection's throughput (the bench's relay: 25 MB/s), so what a transfer gets grows
/// with the connections: measured through the relay, a restore took 4.0 s with 8 and
/// 2.9 s with 16 (peak RSS 88 → 137 MiB, restic's 146).
pub const DEFAULT_CONNECTIONS: usize = 16;

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            url: None,
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            encryption_key_file: None,
            connections: DEFAULT_CONNECTIONS,
        }
    }
}

/// The validated settings every command works from.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub store: StoreSettings,
    pub data_paths: Vec<PathBuf>,
    pub data_exclude: Vec<String>,
    pub target: Target,
    pub ack: Vec<String>,
    pub report_url: Option<String>,
    pub token_file: PathBuf,
    pub report_send_timeout_seconds: u64,
    pub report_budget_seconds: u64,
    pub report_request_timeout_ms: u64,
    pub metadata_url: String,
    /// Set in a config file (then asked even when the root is not the live system).
    pub metadata_url_configured: bool,
    pub metadata_timeout_ms: u64,
    pub hooks_timeout_seconds: u64,
    pub password_hashes: bool,
    /// `[capture] homes`: capture the captured users' homes on the system disk; unset:
    /// when they total at most 1 GiB.
    pub capture_homes: Option<bool>,
    /// `[restore] expected`: this system was set up by the Change OS user-data, so a
    /// restore is due here, and anything that stops it (no store, no snapshot of this
    /// instance) is a failure the orchestrator hears of — not "nothing due".
    pub restore_expected: bool,
    /// `[restore] not_before`: the newest snapshot of this instance when the user-data was
    /// made; restore refuses to pick an older one by itself (a rolled-back store).
    pub restore_not_before: Option<String>,
    /// `[restore] packages`: `install` the user's packages on the new OS (default) or only
    /// `report` what it lacks.
    pub restore_install_packages: bool,
    /// `[restore] ready_timeout_seconds`: how long the readiness check waits for the
    /// services and ports of the old OS.
    pub ready_timeout_seconds: u64,
    /// The files the settings were read from, in order.
    pub sources: Vec<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            store: StoreSettings::default(),
            data_paths: Vec::new(),
            data_exclude: Vec::new(),
            target: Target::Linux,
            ack: Vec::new(),
            report_url: None,
            token_file: PathBuf::from(crate::paths::TOKEN_FILE),
            report_send_timeout_seconds: 30,
            report_budget_seconds: 24 * 3600,
            report_request_timeout_ms: 10_000,
            metadata_url: "http://169.254.169.254".into(),
            metadata_url_configured: false,
            metadata_timeout_ms: 2000,
            hooks_timeout_seconds: 300,
            password_hashes: false,
            capture_homes: None,
            restore_expected: false,
            restore_not_before: None,
            restore_install_packages: true,
            ready_timeout_seconds: 120,
            sources: Vec::new(),
        }
    }
}

/// The default place of the main config file, in-root.
pub use crate::paths::CONFIG_FILE as DEFAULT_CONFIG;

impl Config {
    /// Loads the configuration: `explicit` (taken as given) or `<root>/etc/carryover/config.toml`,
    /// then the `config.d/*.toml` beside it in name order. A missing default file means
    /// defaults; a missing explicit file is an error.
    pub fn load(root: &Root, explicit: Option<&Path>) -> Result<Config, Error> {
        let files = Self::files(root, explicit)?;
        let mut cfg = Config::default();
        for file in &files {
            // a config names the hooks' folder, the store and the token: as root, only
            // from files nobody else can write (as sshd judges its own)
            for p in [Some(file.as_path()), file.parent()].into_iter().flatten() {
                if let Some(why) = crate::sys::untrusted(p) {
                    return Err(Error::Config {
                        file: file.clone(),
                        message: format!("refused: {why}"),
                    });
                }
            }
            let text = std::fs::read_to_string(file).map_err(|e| Error::Config {
                file: file.clone(),
                message: format!("cannot read: {e}"),
            })?;
            let frag = parse_fragment(&text).map_err(|message| Error::Config {
                file: file.clone(),
                message,
            })?;
            cfg.merge(frag, file)?;
        }
        cfg.sources = files;
        Ok(cfg)
    }

    /// What can still be read when `load` failed: every file that is valid on its own,
    /// merged in order, the others left out. Only for telling the orchestrator that the
    /// job failed (its URL and token are usually in a file of their own).
    pub fn load_lenient(root: &Root, explicit: Option<&Path>) -> Config {
        let mut cfg = Config::default();
        for file in Self::files(root, explicit).unwrap_or_default() {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            let Ok(frag) = parse_fragment(&text) else {
                continue;
            };
            let mut next = cfg.clone();
            if next.merge(frag, &file).is_ok() {
                next.sources.push(file);
                cfg = next;
            }
        }
        cfg
    }

    /// The config files in the order they apply.
    fn files(root: &Root, explicit: Option<&Path>) -> Result<Vec<PathBuf>, Error> {
        let main = match explicit {
            Some(p) => {
                if !p.is_file() {
                    return Err(Error::Config {
                        file: p.to_path_buf(),
                        message: "no such config file".into(),
                    });
                }
                p.to_path_buf()
            }
            None => root.follow(DEFAULT_CONFIG),
        };
        let mut files = Vec::new();
        if main.is_file() {
            files.push(main.clone());
        }
        if let Some(dir) = main.parent() {
            let dropins =
                crate::sys::list_dir(&dir.join("config.d")).map_err(|e| Error::Config {
                    file: dir.join("config.d"),
                    message: e.to_string(),
                })?;
            files.extend(
                dropins
                    .into_iter()
                    .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file()),
            );
        }
        Ok(files)
    }

    /// Parses one file's text on top of the defaults (for tests and `--config` checks).
    pub fn from_str(text: &str, name: &Path) -> Result<Config, Error> {
        let mut cfg = Config::default();
        let frag = parse_fragment(text).map_err(|message| Error::Config {
            file: name.to_path_buf(),
            message,
        })?;
        cfg.merge(frag, name)?;
        Ok(cfg)
    }

    /// Applies one fragment: scalars replace, lists (`data.paths`, `data.exclude`,
    /// `check.ack`) accumulate so a drop-in can add a data path without repeating the rest.
    fn merge(&mut self, f: Fragment, file: &Path) -> Result<(), Error> {
        let bad = |key: &str, message: String| Error::Config {
            file: file.to_path_buf(),
            message: format!("key `{key}`: {message}"),
        };
        if let Some(s) = f.store {
            if let Some(url) = s.url {
                if url.trim().is_empty() {
                    return Err(bad("store.url", "must not be empty".into()));
                }
                self.store.url = Some(url);
            }
            set_opt(&mut self.store.endpoint, s.endpoint);
            set_opt(&mut self.store.region, s.region);
            set_opt(&mut self.store.access_key_id, s.access_key_id);
            set_opt(&mut self.store.secret_access_key, s.secret_access_key);
            if let Some(k) = s.encryption_key_file {
                self.store.encryption_key_file = Some(PathBuf::from(k));
            }
            if s.connections == Some(0) {
                return Err(bad("store.connections", "must be at least 1".into()));
            }
            set(&mut self.store.connections, s.connections);
        }
        if let Some(d) = f.data {
            for p in d.paths.unwrap_or_default() {
                if !p.starts_with('/') {
                    return Err(bad("data.paths", format!("'{p}' is not an absolute path")));
                }
                let p = PathBuf::from(p);
                if !self.data_paths.contains(&p) {
                    self.data_paths.push(p);
                }
            }
            self.data_exclude.extend(d.exclude.unwrap_or_default());
        }
        if let Some(c) = f.check {
            set(&mut self.target, c.target);
            for k in c.ack.unwrap_or_default() {
                if !self.ack.contains(&k) {
                    self.ack.push(k);
                }
            }
        }
        if let Some(r) = f.report {
            if let Some(url) = r.url {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(bad("report.url", format!("'{url}' is not an http(s) URL")));
                }
                self.report_url = Some(url.trim_end_matches('/').to_string());
            }
            if let Some(t) = r.token_file {
                self.token_file = PathBuf::from(t);
            }
            set(
                &mut self.report_send_timeout_seconds,
                r.send_timeout_seconds,
            );
            set(&mut self.report_budget_seconds, r.budget_seconds);
            set(&mut self.report_request_timeout_ms, r.request_timeout_ms);
        }
        if let Some(i) = f.identity {
            if let Some(url) = i.metadata_url {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(bad(
                        "identity.metadata_url",
                        format!("'{url}' is not an http(s) URL"),
                    ));
                }
                self.metadata_url = url.trim_end_matches('/').to_string();
                self.metadata_url_configured = true;
            }
            set(&mut self.metadata_timeout_ms, i.timeout_ms);
        }
        if let Some(h) = f.hooks {
            if h.timeout_seconds == Some(0) {
                return Err(bad("hooks.timeout_seconds", "must be at least 1".into()));
            }
            set(&mut self.hooks_timeout_seconds, h.timeout_seconds);
        }
        if let Some(c) = f.capture {
            set(&mut self.password_hashes, c.password_hashes);
            set_opt(&mut self.capture_homes, c.homes);
        }
        if let Some(r) = f.restore {
            set(&mut self.restore_expected, r.expected);
            set_opt(&mut self.restore_not_before, r.not_before);
            match r.packages.as_deref() {
                None => {}
                Some("install") => self.restore_install_packages = true,
                Some("report") => self.restore_install_packages = false,
                Some(other) => {
                    return Err(bad(
                        "restore.packages",
                        format!("'{other}' is neither \"install\" nor \"report\""),
                    ));
                }
            }
            if r.ready_timeout_seconds == Some(0) {
                return Err(bad(
                    "restore.ready_timeout_seconds",
                    "must be at least 1".into(),
                ));
            }
            set(&mut self.ready_timeout_seconds, r.ready_timeout_seconds);
        }
        Ok(())
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

fn set_opt<T>(slot: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *slot = value;
    }
}

/// Parses a TOML fragment; the error says `line N: key `a.b`: what is wrong`.
fn parse_fragment(text: &str) -> Result<Fragment, String> {
    let de = toml::Deserializer::parse(text).map_err(|e| describe(text, "", &e))?;
    serde_path_to_error::deserialize::<_, Fragment>(de).map_err(|e| {
        let path = e.path().to_string();
        describe(text, &path, e.inner())
    })
}

fn describe(text: &str, path: &str, e: &toml::de::Error) -> String {
    let mut out = String::new();
    if let Some(span) = e.span() {
        let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
        out.push_str(&format!("line {line}: "));
    }
    let msg = e.message().trim();
    // serde names an unknown field in the message; put it on the key path.
    let key = match (path, unknown_field(msg)) {
        ("." | "", Some(f)) => f.to_string(),
        (p, Some(f)) if !p.ends_with(f) => format!("{p}.{f}"),
        ("." | "", None) => String::new(),
        (p, _) => p.to_string(),
    };
    if !key.is_empty() {
        out.push_str(&format!("key `{key}`: "));
    }
    out.push_str(msg);
    out
}

fn unknown_field(msg: &str) -> Option<&str> {
    let rest = msg.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Config::from_str(text, Path::new("/etc/carryover/config.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn full_example_parses() {
        let c = Config::from_str(
            include_str!("../packaging/config.toml"),
            Path::new("config.toml"),
        )
        .unwrap();
        assert_eq!(c.target, Target::Linux);
        assert_eq!(c.hooks_timeout_seconds, 300);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = err("[store]\nurl = \"/mnt\"\n\n[data]\npath = [\"/srv\"]\n");
        assert!(e.starts_with("/etc/carryover/config.toml: line 5: "), "{e}");
        assert!(e.contains("key `data.path`"), "{e}");
    }

    #[test]
    fn unknown_section_is_named() {
        let e = err("[stor]\nurl = \"/mnt\"\n");
        assert!(e.contains("line 1"), "{e}");
        assert!(e.contains("key `stor`"), "{e}");
    }

    #[test]
    fn wrong_type_names_key_and_line() {
        let e = err("[data]\npaths = \"/srv\"\n");
        assert!(e.contains("line 2"), "{e}");
        assert!(e.contains("key `data.paths`"), "{e}");
    }

    #[test]
    fn bad_enum_value_is_explained() {
        let e = err("[check]\ntarget = \"macos\"\n");
        assert!(e.contains("key `check.target`"), "{e}");
        assert!(e.contains("linux"), "{e}");
    }

    #[test]
    fn syntax_error_has_a_line() {
        let e = err("[data]\npaths = [\"/srv\"\n");
        assert!(e.contains("line "), "{e}");
    }

    #[test]
    fn store_connections_default_to_16_and_must_be_at_least_1() {
        let c = Config::from_str("[store]\nurl = \"/mnt\"\n", Path::new("c.toml")).unwrap();
        assert_eq!(c.store.connections, 16);
        let c = Config::from_str("[store]\nconnections = 3\n", Path::new("c.toml")).unwrap();
        assert_eq!(c.store.connections, 3);
        let e = err("[store]\nconnections = 0\n");
        assert!(
            e.contains("key `store.connections`") && e.contains("at least 1"),
            "{e}"
        );
    }

    #[test]
    fn relative_data_path_is_refused() {
        let e = err("[data]\npaths = [\"srv\"]\n");
        assert!(
            e.contains("key `data.paths`") && e.contains("absolute"),
            "{e}"
        );
    }

    #[test]
    fn dropins_accumulate_lists_and_override_scalars() {
        let t = tempfile::tempdir().unwrap();
        let etc = t.path().join(&crate::paths::CONFIG_DIR[1..]);
        std::fs::create_dir_all(etc.join("config.d")).unwrap();
        std::fs::write(
            etc.join("config.toml"),
            "[data]\npaths=[\"/srv\"]\n[hooks]\ntimeout_seconds=10\n",
        )
        .unwrap();
        std::fs::write(
            etc.join("config.d/20-b.toml"),
            "[hooks]\ntimeout_seconds=30\n",
        )
        .unwrap();
        std::fs::write(
            etc.join("config.d/10-a.toml"),
            "[data]\npaths=[\"/var/lib/mysql\"]\n[hooks]\ntimeout_seconds=20\n",
        )
        .unwrap();
        std::fs::write(etc.join("config.d/ignored.bak"), "garbage").unwrap();
        let root = Root::new(t.path()).unwrap();
        let c = Config::load(&root, None).unwrap();
        assert_eq!(
            c.data_paths,
            vec![PathBuf::from("/srv"), PathBuf::from("/var/lib/mysql")]
        );
        assert_eq!(c.hooks_timeout_seconds, 30);
        assert_eq!(c.sources.len(), 3);
    }

    #[test]
    fn missing_default_config_means_defaults() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path()).unwrap();
        let c = Config::load(&root, None).unwrap();
        assert!(c.sources.is_empty());
        assert_eq!(c.metadata_url, "http://169.254.169.254");
    }

    #[test]
    fn secrets_are_not_serialized() {
        let c = Config::from_str(
            "[store]\nurl=\"s3://b/p\"\nsecret_access_key=\"SECRET123\"\n",
            Path::new("x.toml"),
        )
        .unwrap();
        assert!(!serde_json::to_string(&c).unwrap().contains("SECRET123"));
    }
}
