//! Preflight: what would make this Change OS lose data or fail, as findings with stable
//! keys, a severity, the evidence and what to do. `capture` runs it first and stops on a
//! blocker that was not acknowledged (`--ack KEY`, `[check] ack`).
//!
//! `findings` is pure (its input is gathered once by `gather`), so every key is tested on
//! plain values.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::agent::{Arch, Platform};
use crate::config::Target;
use crate::disks::probe::lvm::VolumeGroup;
use crate::disks::{Layout, Mount, mount_of};
use crate::state::mounts::MountEntry;
use crate::state::windows::WindowsState;

/// How much a finding matters (serialized `blocker`, `warning`, `info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Stops `capture` unless acknowledged by key.
    Blocker,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Blocker => "blocker",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // padding (`{:<8}`) applies to the word
        f.pad(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub key: String,
    pub severity: Severity,
    pub message: String,
    pub evidence: String,
    pub remediation: String,
}

fn finding(
    key: &str,
    severity: Severity,
    message: String,
    evidence: String,
    remediation: &str,
) -> Finding {
    Finding {
        key: key.into(),
        severity,
        message,
        evidence,
        remediation: remediation.into(),
    }
}

/// Everything the findings are decided from.
#[derive(Debug, Default, Clone)]
pub struct Input {
    pub target: Option<Target>,
    pub fstab: Vec<MountEntry>,
    /// The live mount table (`/proc/self/mountinfo`), when there is one.
    pub mounts: Vec<Mount>,
    /// Targets of /etc/crypttab.
    pub crypttab: Vec<String>,
    pub instance_type: Option<String>,
    pub data_paths: Vec<PathBuf>,
    /// The store's directory when it is local.
    pub store_dir: Option<PathBuf>,
    /// Free bytes where the store is, and what the capture will need at most.
    pub store_free: Option<u64>,
    pub estimate: Option<u64>,
    /// The disks (empty when they could not be discovered).
    pub layout: Layout,
    pub volume_groups: Vec<VolumeGroup>,
    /// A Windows system's volumes and raw disks.
    pub windows: Option<WindowsState>,
    /// The captured users' homes on the system disk.
    pub homes: Vec<crate::state::homes::Home>,
    /// Folders on the system disk with files no package owns.
    pub app_dirs: Vec<crate::state::appfiles::AppDir>,
    /// The names of the pre-capture hooks.
    pub capture_hooks: Vec<String>,
    /// How carryover itself is set up (store, reporting, accounts, acknowledgements);
    /// `None`: not judged.
    pub setup: Option<Setup>,
}

/// What the operator configured, for the findings that catch set-up mistakes while the
/// old disk still exists.
#[derive(Debug, Default, Clone)]
pub struct Setup {
    /// Data paths (`[data] paths`, `--path`) that do not exist.
    pub data_paths_missing: Vec<PathBuf>,
    /// There are pre-capture hooks: a missing data path may be what one of them makes (a
    /// database dump's folder); capture checks again after they ran.
    pub pre_capture_hooks: bool,
    /// Data paths that are places of the OS itself (`/etc`, `/var/lib`, `/usr`…).
    pub data_paths_system: Vec<PathBuf>,
    /// The keys acknowledged (`[check] ack`, `--ack`).
    pub ack: Vec<String>,
    pub store_configured: bool,
    /// `[store] encryption_key_file` is set.
    pub store_encrypted: bool,
    pub report_url: Option<String>,
    /// The token file exists.
    pub token_present: bool,
    /// Captured users that have a password hash in /etc/shadow.
    pub users_with_hashes: Vec<String>,
    /// `[capture] password_hashes`.
    pub password_hashes: bool,
    /// `metadata`, `dmi` or `machine-id`.
    pub instance_id_source: Option<String>,
    /// The agent the new OS needs that the store lacks (and that the capture does not
    /// bring itself): `(platform, the store)`; `None` when it is there or not judged.
    pub agent_missing: Option<(Platform, String)>,
}

/// The finding `capture` drops when it brings the needed agent itself (`--agent`).
pub const AGENT_MISSING: &str = "agent-missing";
/// The finding `capture` checks again after the pre-capture hooks ran.
pub const DATA_PATH_MISSING: &str = "data-path-missing";

/// Every finding key carryover knows: an acknowledgement of another key is a typo.
pub const KEYS: &[&str] = &[
    "store-on-system-disk",
    "lvm-vg-spans-system-disk",
    "mount-on-system-disk",
    "store-too-small",
    "flavor-cannot-change-os",
    "lvm-to-windows",
    "linux-fs-to-windows",
    "refs-to-linux",
    "luks-key-needed",
    "fstab-device-name-unstable",
    "data-path-on-system-disk",
    DATA_PATH_MISSING,
    "data-path-is-system",
    "swap-on-data-disk",
    "ntfs-needs-ntfs3g",
    "mount-table-unavailable",
    "disks-unavailable",
    "ack-unknown-key",
    "store-not-configured",
    "report-not-configured",
    "report-token-missing",
    "report-token-over-http",
    "store-not-encrypted",
    "password-hashes-not-captured",
    "instance-id-from-machine-id",
    "home-on-system-disk",
    AGENT_MISSING,
    "app-files-on-system-disk",
    "database-on-system-disk",
];

/// The findings about carryover's own set-up.
fn setup_findings(s: &Setup, out: &mut Vec<Finding>) {
    for p in &s.data_paths_system {
        out.push(finding(
            "data-path-is-system",
            Severity::Blocker,
            format!("the data path {} is a place of the operating system itself: restoring it would carry the old OS over the new one (its fstab, passwd, package database)", p.display()),
            format!("{} in [data] paths or --path", p.display()),
            "name the application's own folders instead (/etc/nginx, /var/lib/postgresql, /srv/app); restore refuses such a path in any case",
        ));
    }
    for p in &s.data_paths_missing {
        let (severity, message, remediation) = if s.pre_capture_hooks {
            (
                Severity::Warning,
                "does not exist yet: a pre-capture hook may make it (the example database hooks make /var/backups/carryover-db)",
                "capture checks again after the pre-capture hooks ran and stops if it is still missing; correct the path if it is a typo",
            )
        } else {
            (
                Severity::Blocker,
                "does not exist: nothing of it would be captured",
                "correct the path (a typo?) or remove it from [data] paths; `--ack data-path-missing` if it is meant to be absent",
            )
        };
        out.push(finding(
            DATA_PATH_MISSING,
            severity,
            format!("the data path {} {message}", p.display()),
            format!(
                "{} is in [data] paths or --path but not on this system",
                p.display()
            ),
            remediation,
        ));
    }
    for k in s.ack.iter().filter(|k| !KEYS.contains(&k.as_str())) {
        let near = KEYS
            .iter()
            .min_by_key(|known| edit_distance(k, known))
            .filter(|known| edit_distance(k, known) <= 3);
        out.push(finding(
            "ack-unknown-key",
            Severity::Warning,
            format!("the acknowledgement `{k}` names no finding carryover knows: it acknowledges nothing"),
            format!("`{k}` in [check] ack or --ack"),
            &match near {
                Some(n) => format!("did you mean `{n}`?"),
                None => "see the finding keys in the README".to_string(),
            },
        ));
    }
    if !s.store_configured {
        out.push(finding(
            "store-not-configured",
            Severity::Warning,
            "no store is configured: capture needs --store, and the new OS learns the store only from the user-data".into(),
            "no [store] url and no --store".into(),
            "set [store] url to a directory on a data disk or an s3:// URL",
        ));
    }
    if s.store_configured && !s.store_encrypted {
        out.push(finding(
            "store-not-encrypted",
            Severity::Info,
            "the store is not encrypted: whoever can write its disk or bucket can change what the new OS restores as root (and read the data)".into(),
            "no [store] encryption_key_file".into(),
            "set [store] encryption_key_file (`openssl rand -hex 32`, kept off the system disk) so the store is sealed and authenticated; see docs/security.md",
        ));
    }
    match &s.report_url {
        None => out.push(finding(
            "report-not-configured",
            Severity::Warning,
            "no orchestrator is configured: nobody hears whether the new OS came back".into(),
            "no [report] url".into(),
            "set [report] url (and token_file) to the orchestrating API, or watch the new OS yourself",
        )),
        Some(url) if s.token_present && crate::report::plain_http_off_host(url) => {
            out.push(finding(
                "report-token-over-http",
                Severity::Warning,
                format!("the orchestrator's token goes to {url} over plain http: anyone on the way can read it"),
                "[report] url is http:// to a host that is not this machine".into(),
                "use an https:// URL for the orchestrator",
            ))
        }
        Some(url) if !s.token_present => out.push(finding(
            "report-token-missing",
            Severity::Warning,
            format!("events go to {url} without a token: an orchestrator that wants one refuses them"),
            "[report] token_file does not exist".into(),
            "write the orchestrator's token to the token file (0600) before the capture: it travels in the snapshot",
        )),
        Some(_) => {}
    }
    if !s.password_hashes && !s.users_with_hashes.is_empty() {
        out.push(finding(
            "password-hashes-not-captured",
            Severity::Warning,
            format!(
                "{} users log in with a password; without their hashes they are locked on the new OS",
                s.users_with_hashes.len()
            ),
            format!("password hashes in /etc/shadow: {}", s.users_with_hashes.join(", ")),
            "set [capture] password_hashes = true (stored in the root-only secrets object), or make sure they have SSH keys",
        ));
    }
    if let Some((platform, store)) = &s.agent_missing {
        out.push(finding(
            AGENT_MISSING,
            Severity::Warning,
            format!("the store holds no agent for {platform}: the user-data cannot install carryover on the new OS"),
            format!("{store} has no {} (a readable {platform} binary)", platform.key().unwrap_or("agent")),
            &format!(
                "keep it there: `carryover capture --agent FILE` or `carryover userdata --agent FILE`, FILE being {}",
                match platform.os {
                    Target::Windows => "carryover.exe (the Windows build)".to_string(),
                    Target::Linux => format!("the {} build (packaging/build-linux)", platform.arch),
                }
            ),
        ));
    }
    if s.instance_id_source.as_deref() == Some("machine-id") {
        out.push(finding(
            "instance-id-from-machine-id",
            Severity::Warning,
            "the instance id comes from /etc/machine-id: clones of this server share it, and the new OS gets another one".into(),
            "no metadata service and no DMI product UUID answered".into(),
            "make the metadata service reachable ([identity] metadata_url), or name the snapshot on the new OS with `restore --snapshot`",
        ));
    }
}

/// Levenshtein distance, for suggesting the key a typo meant.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The result of a preflight: every finding and the blockers not acknowledged.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub findings: Vec<Finding>,
    pub blockers: Vec<String>,
    pub ack: Vec<String>,
}

/// The whole preflight, as `check` and `capture` run it: gather, decide, compare with
/// the acknowledgements (the config's and the command line's).
pub fn evaluate(
    root: &crate::sys::Root,
    config: &crate::config::Config,
    state: &crate::state::SystemState,
    target: Target,
    data_paths: &[PathBuf],
    store_url: Option<&str>,
    extra_ack: &[String],
) -> Evaluation {
    let mut ack = config.ack.clone();
    for a in extra_ack {
        if !ack.contains(a) {
            ack.push(a.clone());
        }
    }
    let (mut input, mut findings) = gather(root, state, Some(target), data_paths, store_url);
    input.setup = Some(gather_setup(
        root, config, state, target, data_paths, store_url, &ack,
    ));
    findings.extend(self::findings(&input));
    let blockers = unacknowledged(&findings, &ack);
    Evaluation {
        findings,
        blockers,
        ack,
    }
}

/// A preflight as `check` asks for it, and as `capture` runs it first.
pub struct Request<'a> {
    pub root: &'a crate::sys::Root,
    pub config: &'a crate::config::Config,
    /// The OS family after the change (default: the config's).
    pub target: Option<Target>,
    /// Findings accepted by key, beside the config's.
    pub ack: &'a [String],
    /// Data paths beside the config's, absolute in the system under the root.
    pub paths: &'a [PathBuf],
    /// The store's URL (default: the config's).
    pub store: Option<&'a str>,
}

/// The system as the preflight saw it: what a capture takes next.
pub struct Gathered {
    pub target: Target,
    /// The config's data paths and the request's.
    pub data_paths: Vec<PathBuf>,
    /// The store's URL, when one is named or configured.
    pub store: Option<String>,
    pub state: crate::state::SystemState,
    pub secrets: crate::state::Secrets,
}

impl Request<'_> {
    /// Merges the data paths and the store URL and reads the system. A data path that is
    /// not absolute is a usage error: it would be relative to where carryover was started.
    pub fn gather(&self) -> Result<Gathered, crate::error::Error> {
        let mut data_paths = self.config.data_paths.clone();
        for p in self.paths {
            // a path in the system under --root: from its root ("/srv"; on Windows also "C:\srv")
            if !p.has_root() {
                return Err(crate::error::Error::Usage(format!(
                    "--path {}: not an absolute path",
                    p.display()
                )));
            }
            data_paths.push(p.clone());
        }
        // the state sees the --path data paths too (what they hold is not "left on the
        // system disk")
        let mut with_paths = self.config.clone();
        with_paths.data_paths = data_paths.clone();
        let (state, secrets) = crate::state::gather(self.root, &with_paths);
        Ok(Gathered {
            target: self.target.unwrap_or(self.config.target),
            data_paths,
            store: self
                .store
                .map(str::to_string)
                .or_else(|| self.config.store.url.clone()),
            state,
            secrets,
        })
    }

    /// The findings on what `gather` read.
    pub fn evaluate(&self, g: &Gathered) -> Evaluation {
        evaluate(
            self.root,
            self.config,
            &g.state,
            g.target,
            &g.data_paths,
            g.store.as_deref(),
            self.ack,
        )
    }
}

/// How `carryover check` ended: the JSON of `check --format json` and its exit code.
#[derive(Debug, Serialize)]
pub struct CheckOutcome {
    pub target: Target,
    pub findings: Vec<Finding>,
    /// The keys acknowledged (the config's and the request's).
    #[serde(skip)]
    pub ack: Vec<String>,
    /// The blockers not acknowledged.
    #[serde(skip)]
    pub blockers: Vec<String>,
}

impl CheckOutcome {
    /// Blocked while a blocker is not acknowledged.
    pub fn exit(&self) -> crate::error::Exit {
        if self.blockers.is_empty() {
            crate::error::Exit::Success
        } else {
            crate::error::Exit::Blocked
        }
    }
}

/// The `check` use case: gather, decide, and tell the orchestrator (the `check` event).
pub fn run(req: &Request) -> Result<CheckOutcome, crate::error::Error> {
    use crate::report::{EventPhase, EventState, Reporter};
    let g = req.gather()?;
    let Evaluation {
        findings,
        blockers,
        ack,
    } = req.evaluate(&g);
    Reporter::new(
        req.root,
        req.config,
        g.state.identity.instance_id.as_deref(),
    )
    .send(
        EventPhase::Check,
        if blockers.is_empty() {
            EventState::Succeeded
        } else {
            EventState::Blocked
        },
        None,
        |e| e.set_findings(&findings),
    );
    Ok(CheckOutcome {
        target: g.target,
        findings,
        ack,
        blockers,
    })
}

fn gather_setup(
    root: &crate::sys::Root,
    config: &crate::config::Config,
    state: &crate::state::SystemState,
    target: Target,
    data_paths: &[PathBuf],
    store_url: Option<&str>,
    ack: &[String],
) -> Setup {
    let shadow = crate::sys::read_opt(&root.follow("/etc/shadow"))
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let users_with_hashes = shadow
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            Some((f.next()?, f.next()?))
        })
        .filter(|(name, hash)| {
            let locked = hash.is_empty() || hash.starts_with('!') || hash.starts_with('*');
            !locked && state.users.iter().any(|u| u.name == *name)
        })
        .map(|(name, _)| name.to_string())
        .collect();
    Setup {
        // (a pre-capture hook may make one: then a warning, and capture checks again)
        data_paths_missing: data_paths
            .iter()
            .filter(|p| std::fs::symlink_metadata(root.follow(p)).is_err())
            .cloned()
            .collect(),
        pre_capture_hooks: !crate::hooks::list(root, crate::hooks::Phase::PreCapture).is_empty(),
        data_paths_system: data_paths
            .iter()
            .filter(|p| crate::paths::is_system_location(&p.to_string_lossy()))
            .cloned()
            .collect(),
        ack: ack.to_vec(),
        store_configured: store_url.is_some(),
        store_encrypted: config.store.encryption_key_file.is_some(),
        report_url: config.report_url.clone(),
        token_present: root.follow(&config.token_file).is_file(),
        users_with_hashes,
        password_hashes: config.password_hashes,
        instance_id_source: state.identity.instance_id_source.clone(),
        agent_missing: agent_missing(target, store_url),
    }
}

/// The agent a change to `target` needs on this machine: that family's build for this
/// machine's architecture (Change OS keeps the hardware; Windows has an x86_64 build only).
pub fn agent_needed(target: Target) -> Platform {
    Platform {
        os: target,
        arch: match target {
            Target::Linux => Arch::this(),
            Target::Windows => Arch::X86_64,
        },
    }
}

/// The needed agent when a local store lacks it and the capture does not keep it itself
/// (it keeps its own build). Object stores are not judged here (no request in a preflight).
fn agent_missing(target: Target, store_url: Option<&str>) -> Option<(Platform, String)> {
    let needed = agent_needed(target);
    let dir = store_url.and_then(crate::store::local_dir)?;
    if needed == Platform::this() || needed.key().is_err() {
        return None;
    }
    let present = crate::store::backend::LocalBackend::open(&dir, false)
        .ok()
        .and_then(|b| crate::agent::find(&b, needed))
        .is_some();
    (!present).then(|| (needed, dir.display().to_string()))
}

/// Filesystems Windows cannot read without a third-party driver (or at all).
const LINUX_FS: &[&str] = &["ext2", "ext3", "ext4", "xfs", "btrfs"];

/// The drive letter a path names (`D:\data` → `D`), on any platform.
fn drive_letter(p: &Path) -> Option<char> {
    let s = p.to_string_lossy();
    let mut c = s.chars();
    match (c.next(), c.next()) {
        (Some(d), Some(':')) if d.is_ascii_alphabetic() => Some(d.to_ascii_uppercase()),
        _ => None,
    }
}

/// The findings only a Windows system has: its data volumes and what its disks hold.
fn windows_findings(w: &WindowsState, target: Target, out: &mut Vec<Finding>) {
    if target == Target::Linux {
        let (_, unmapped) = w.linux_mounts();
        for v in w.volumes.iter().filter(|v| !v.system) {
            match v.filesystem.as_str() {
                "NTFS" => out.push(finding(
                    "ntfs-needs-ntfs3g",
                    Severity::Info,
                    format!("{} is NTFS: the new Linux needs ntfs-3g", v.mount),
                    format!("{} {} serial {} label '{}'", v.mount, v.filesystem, v.serial, v.label),
                    if unmapped.contains(&v.mount) {
                        "its disk could not be read raw, so its UUID is unknown: mount it on the new Linux by hand (ntfs-3g)"
                    } else {
                        "nothing to do: restore installs ntfs-3g and mounts it at /mnt/<letter> by its UUID"
                    },
                )),
                "ReFS" => out.push(finding(
                    "refs-to-linux",
                    Severity::Blocker,
                    format!("{} is ReFS: Linux cannot read it, the data would be unreachable", v.mount),
                    format!("{} {} serial {}", v.mount, v.filesystem, v.serial),
                    "move the data to an NTFS volume (or into the store) before changing to Linux",
                )),
                _ => {}
            }
        }
    }
    for d in w.disks.iter().filter(|d| !d.system) {
        for c in &d.contents {
            let kind = c.kind.as_deref().unwrap_or_default();
            let where_ = format!(r"\.\PhysicalDrive{} partition {}", d.number, c.partition);
            let evidence = format!("{where_}: {kind} {}", c.uuid.clone().unwrap_or_default());
            if target == Target::Windows && kind == "LVM2_member" {
                out.push(finding(
                    "lvm-to-windows",
                    Severity::Blocker,
                    format!("{where_} is an LVM physical volume: Windows cannot read LVM"),
                    evidence,
                    "move the data to a plain NTFS disk (or into the store) before changing to Windows",
                ));
            } else if target == Target::Windows && LINUX_FS.contains(&kind) {
                out.push(finding(
                    "linux-fs-to-windows",
                    Severity::Warning,
                    format!(
                        "{where_} is {kind}: Windows cannot read it without Ext2Fsd or similar"
                    ),
                    evidence,
                    "install a reader on the new Windows, or copy the data to NTFS first",
                ));
            }
        }
    }
}

/// Instance families that cannot change OS (Huawei Cloud: H2).
fn flavor_blocked(ty: &str) -> bool {
    ty.to_ascii_lowercase().starts_with("h2.")
}

pub fn findings(i: &Input) -> Vec<Finding> {
    let mut out = Vec::new();
    let target = i.target.unwrap_or(Target::Linux);
    let root_source = mount_of(&i.mounts, Path::new("/")).map(|m| m.source.clone());
    // On a system disk: by the discovered disks when they are known (a mount on another
    // partition or LV of the system disk is deleted too), else "on the root filesystem".
    let system_drive = i.windows.as_ref().and_then(|w| {
        w.volumes
            .iter()
            .find(|v| v.system)
            .and_then(|v| drive_letter(Path::new(&v.mount)))
    });
    let on_system_disk = |p: &Path| -> bool {
        if let Some(sys) = system_drive {
            // Windows: a path without a drive is on the root's, the system drive
            return drive_letter(p).is_none_or(|d| d == sys);
        }
        crate::disks::in_mount_table_on_system_disk(&i.mounts, &i.layout, p).unwrap_or(false)
    };

    if let Some(dir) = &i.store_dir
        && on_system_disk(dir)
    {
        out.push(finding(
                "store-on-system-disk",
                Severity::Blocker,
                format!("the store {} is on the system disk, which the Change OS deletes", dir.display()),
                format!("{} is on the root filesystem ({})", dir.display(), root_source.clone().unwrap_or_default()),
                "put the store on a data disk (e.g. /mnt/data/carryover) or in S3-compatible object storage",
            ));
    }
    for p in &i.data_paths {
        if on_system_disk(p) {
            out.push(finding(
                "data-path-on-system-disk",
                Severity::Info,
                format!(
                    "{} is on the system disk: it is captured and restored from the store",
                    p.display()
                ),
                format!("{} is on the root filesystem", p.display()),
                "nothing to do; keep it in [data] paths",
            ));
        }
    }
    if let (Some(free), Some(need)) = (i.store_free, i.estimate)
        && need > free
    {
        out.push(finding(
                "store-too-small",
                Severity::Blocker,
                format!("the capture may need {} MB; the store has {} MB free", need / 1_000_000, free / 1_000_000),
                format!("data paths total {need} bytes before compression; {free} bytes free where the store is"),
                "free space on the store's disk, a larger disk, or an S3 store",
            ));
    }
    for vg in &i.volume_groups {
        let on = |system: bool| {
            vg.pvs.iter().any(|pv| {
                pv.disks
                    .iter()
                    .any(|d| i.layout.system_disks.contains(d) == system)
            })
        };
        if on(true) && on(false) {
            let where_: Vec<String> = vg
                .pvs
                .iter()
                .map(|pv| format!("{} on {}", pv.name, pv.disks.join("+")))
                .collect();
            out.push(finding(
                "lvm-vg-spans-system-disk",
                Severity::Blocker,
                format!(
                    "volume group {} has PVs on the system disk and on data disks: without the system disk its volumes cannot be activated",
                    vg.name
                ),
                format!("{}: {}", vg.name, where_.join(", ")),
                "pvmove the extents off the system disk and vgreduce it (or move the data into the store) before the Change OS",
            ));
        }
    }
    for m in i.fstab.iter().filter(|m| m.is_data() && !m.swap) {
        let mp = Path::new(&m.mountpoint);
        let covered = i
            .data_paths
            .iter()
            .any(|p| p.starts_with(mp) || mp.starts_with(p));
        let mounted_here = mount_of(&i.mounts, mp).is_some_and(|x| x.mountpoint == mp);
        if mounted_here && on_system_disk(mp) && !covered {
            out.push(finding(
                "mount-on-system-disk",
                Severity::Blocker,
                format!(
                    "{} is on the system disk ({}): the Change OS deletes it and it is not in [data] paths",
                    m.mountpoint, m.spec
                ),
                format!(
                    "{} is mounted from the system disk {}",
                    m.mountpoint,
                    i.layout.system_disks.join(", ")
                ),
                "add it to [data] paths so the store carries it, or move it to a data disk",
            ));
        }
    }
    if let Some(ty) = &i.instance_type
        && flavor_blocked(ty)
    {
        out.push(finding(
            "flavor-cannot-change-os",
            Severity::Blocker,
            format!("instance type {ty} cannot change OS"),
            format!("metadata instance-type = {ty}"),
            "resize to a flavor that supports Change OS first, or migrate instead",
        ));
    }
    for m in i.fstab.iter().filter(|m| m.is_data()) {
        let where_ = if m.swap {
            "swap".to_string()
        } else {
            m.mountpoint.clone()
        };
        if m.spec_kind == "device" {
            out.push(finding(
                "fstab-device-name-unstable",
                Severity::Warning,
                format!("{where_} is named by device ({}) in fstab", m.spec),
                format!("fstab: {} {} {}", m.spec, where_, m.fstype),
                "use UUID= (see `carryover probe`): device names can change after the Change OS; restore writes what was captured",
            ));
        }
        if m.swap {
            out.push(finding(
                "swap-on-data-disk",
                Severity::Info,
                format!("swap on a data disk ({}) is carried to the new OS", m.spec),
                format!("fstab: {} none swap", m.spec),
                "nothing to do, or `--ack swap-on-data-disk`",
            ));
        }
        let lvm = m.spec_kind == "lvm";
        let luks = m.spec.starts_with("/dev/mapper/")
            && i.crypttab
                .iter()
                .any(|c| m.spec.ends_with(&format!("/{c}")));
        if luks {
            out.push(finding(
                "luks-key-needed",
                Severity::Warning,
                format!("{where_} is an encrypted (LUKS) volume"),
                format!("fstab: {}; /etc/crypttab names it", m.spec),
                "make sure its key or passphrase reaches the new OS; carryover does not carry keys",
            ));
        }
        match target {
            Target::Windows => {
                if lvm && !luks {
                    out.push(finding(
                        "lvm-to-windows",
                        Severity::Blocker,
                        format!("{where_} is an LVM volume: Windows cannot read LVM, the data would be unreachable"),
                        format!("fstab: {} {}", m.spec, m.fstype),
                        "move the data to a plain NTFS disk (or into the store) before changing to Windows",
                    ));
                } else if LINUX_FS.contains(&m.fstype.as_str()) {
                    out.push(finding(
                        "linux-fs-to-windows",
                        Severity::Warning,
                        format!("{where_} is {}: Windows cannot read it without Ext2Fsd or similar (xfs and btrfs not at all)", m.fstype),
                        format!("fstab: {} {} {}", m.spec, where_, m.fstype),
                        "install a reader on the new Windows, or copy the data to NTFS first",
                    ));
                }
            }
            Target::Linux => {
                if m.fstype == "ntfs" || m.fstype == "ntfs-3g" || m.fstype == "ntfs3" {
                    out.push(finding(
                        "ntfs-needs-ntfs3g",
                        Severity::Info,
                        format!("{where_} is NTFS: the new Linux needs ntfs-3g"),
                        format!("fstab: {} {} {}", m.spec, where_, m.fstype),
                        "nothing to do: the user-data installs ntfs-3g when the store is on NTFS; install it for other NTFS disks",
                    ));
                }
            }
        }
    }
    for h in i.homes.iter().filter(|h| !h.in_data_paths) {
        let size = format!(
            "{} in {} file{}",
            crate::units::bytes(h.bytes),
            h.files,
            if h.files == 1 { "" } else { "s" }
        );
        let (fate, remediation) = if h.captured {
            (
                "captured as data ([capture] homes)",
                "nothing to do; or move it to a data disk and set [capture] homes = false",
            )
        } else {
            (
                "NOT captured: the Change OS deletes it",
                "set [capture] homes = true (unset, homes are captured only while they total at most 1 GiB), add it to [data] paths, or move it to a data disk",
            )
        };
        out.push(finding(
            "home-on-system-disk",
            Severity::Warning,
            format!(
                "the home of {} ({}, {size}) is on the system disk: {fate}",
                h.user, h.path
            ),
            format!(
                "{} is on the system disk; {} bytes without its caches (~/.cache)",
                h.path, h.bytes
            ),
            remediation,
        ));
    }
    app_findings(i, &mut out);
    if let Some(w) = &i.windows {
        windows_findings(w, target, &mut out);
    }
    if let Some(s) = &i.setup {
        setup_findings(s, &mut out);
    }
    out
}

/// Where the example database hooks write their dumps.
pub const DB_DUMP_DIR: &str = "/var/backups/carryover-db";

/// The words a database's hook is recognised by in its file name.
fn hook_words(db: &str) -> &'static [&'static str] {
    match db {
        "postgresql" => &["postgresql", "postgres", "pg", "pgsql"],
        "mongodb" => &["mongo", "mongodb"],
        "redis" => &["redis"],
        _ => &["mysql", "mariadb", "mysqldump"],
    }
}

/// Application files and databases on the system disk.
fn app_findings(i: &Input, out: &mut Vec<Finding>) {
    let covered = |p: &str| i.data_paths.iter().any(|d| Path::new(p).starts_with(d));
    for d in i.app_dirs.iter() {
        let captured = d.captured || covered(&d.path);
        if let Some((db, dir)) = &d.database {
            let db_captured = captured || covered(dir);
            let hook = i.capture_hooks.iter().find(|h| {
                h.to_ascii_lowercase()
                    .split(|c: char| !c.is_ascii_alphanumeric())
                    .any(|w| hook_words(db).contains(&w))
            });
            let dumps_kept = covered(DB_DUMP_DIR);
            match hook {
                Some(h) if dumps_kept => out.push(finding(
                    "database-on-system-disk",
                    Severity::Info,
                    format!("the {db} data directory {dir} is on the system disk; the pre-capture hook {h} dumps it into {DB_DUMP_DIR}, which is captured"),
                    format!("{dir} ({db}); pre-capture hook {h}; {DB_DUMP_DIR} in the data paths"),
                    "nothing to do",
                )),
                Some(h) => out.push(finding(
                    "database-on-system-disk",
                    Severity::Blocker,
                    format!("the {db} data directory {dir} is on the system disk; the pre-capture hook {h} is there, but {DB_DUMP_DIR} (where the example hooks dump) is not in the data paths: the dump would be deleted with the disk"),
                    format!("{dir} ({db}); pre-capture hook {h}; {DB_DUMP_DIR} not captured"),
                    &format!("add {DB_DUMP_DIR} to [data] paths (or --path {DB_DUMP_DIR})"),
                )),
                _ => out.push(finding(
                    "database-on-system-disk",
                    Severity::Blocker,
                    format!("a {db} data directory ({dir}) is on the system disk: the Change OS deletes it, and copying the files of a running database is not a consistent backup"),
                    format!("{dir} holds a {db} data directory; {}", if db_captured { "captured as data, but no pre-capture hook stops or dumps the database" } else { "not captured" }),
                    "copy the example hook for it from /usr/share/carryover/examples/hooks/pre-capture.d/ into /etc/carryover/hooks/pre-capture.d/ (it dumps the database consistently; its post-restore twin loads the dump on the new OS) and add /var/backups/carryover-db to [data] paths — or move the database to a data disk; see the README's \"Databases\"",
                )),
            }
        }
        if captured {
            continue;
        }
        out.push(finding(
            "app-files-on-system-disk",
            Severity::Warning,
            format!(
                "{} holds {} files ({}) no package owns, on the system disk: the Change OS deletes them",
                d.path,
                d.files,
                crate::units::bytes(d.bytes)
            ),
            format!("{}: {} files, {} bytes not owned by a package", d.path, d.files, d.bytes),
            &format!("capture it: carryover capture --path {} (or add it to [data] paths); or acknowledge that it is not needed", d.path),
        ));
    }
}

/// The keys of blockers not acknowledged.
pub fn unacknowledged(found: &[Finding], ack: &[String]) -> Vec<String> {
    found
        .iter()
        .filter(|f| f.severity == Severity::Blocker && !ack.contains(&f.key))
        .map(|f| f.key.clone())
        .collect()
}

/// Reads /etc/crypttab's target names.
pub fn parse_crypttab(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| crate::state::words(l).first().map(|s| s.to_string()))
        .collect()
}

/// Reads what the findings need from the system under the root.
pub fn gather(
    root: &crate::sys::Root,
    state: &crate::state::SystemState,
    target: Option<Target>,
    data_paths: &[PathBuf],
    store_url: Option<&str>,
) -> (Input, Vec<Finding>) {
    let mut notes = Vec::new();
    // Windows has volumes and raw disks (in its own section) instead
    let windows = state.windows.is_some();
    let mounts = match crate::disks::mount_table(root) {
        Ok(t) => t,
        Err(_) if windows => Vec::new(),
        Err(_) => {
            notes.push(finding(
                "mount-table-unavailable",
                Severity::Info,
                "no mount table under the root: the disk checks are based on fstab only".into(),
                format!("{} cannot be read", crate::disks::MOUNT_TABLE),
                "run carryover on the live system (--root /) for the full check",
            ));
            Vec::new()
        }
    };
    if !state.disks.discovered && !windows {
        notes.push(finding(
            "disks-unavailable",
            Severity::Info,
            "the disks could not be discovered: the checks use fstab and the mount table only"
                .into(),
            "/sys/block cannot be read under the root".into(),
            "run carryover on the live system (--root /) for the full check",
        ));
    }
    let crypttab = crate::sys::read_opt(&root.follow("/etc/crypttab"))
        .ok()
        .flatten()
        .map(|b| parse_crypttab(&String::from_utf8_lossy(&b)))
        .unwrap_or_default();
    let local = store_url.and_then(crate::store::local_dir);
    let store_dir = local.as_deref().map(|p| {
        let abs = existing_ancestor(p);
        let canon = std::fs::canonicalize(&abs).unwrap_or(abs);
        if canon.starts_with(root.dir()) {
            root.inner(&canon)
        } else {
            canon
        }
    });
    let store_free = local
        .as_deref()
        .map(existing_ancestor)
        .and_then(|p| crate::sys::free_bytes(&p));
    // A store that already holds snapshots gets an incremental capture: only changed
    // content is stored, so the full size would overstate the need (and the walk would be
    // work done twice). The first capture is measured.
    let incremental = local
        .map(|d| d.join("snapshots"))
        .is_some_and(|d| crate::sys::list_dir(&d).is_ok_and(|l| !l.is_empty()));
    // the homes capture takes count too (measured without their caches already)
    let homes: u64 = state
        .homes
        .iter()
        .filter(|h| h.captured && !h.in_data_paths)
        .map(|h| h.bytes)
        .sum();
    let estimate = ((!data_paths.is_empty() || homes > 0) && store_free.is_some() && !incremental)
        .then(|| {
            homes
                + data_paths
                    .iter()
                    .map(|p| crate::data::capture::estimate_bytes(&root.follow(p)))
                    .sum::<u64>()
        });
    (
        Input {
            target,
            fstab: state.mounts.clone(),
            mounts,
            crypttab,
            instance_type: state.identity.instance_type.clone(),
            data_paths: data_paths.to_vec(),
            store_dir,
            store_free,
            estimate,
            layout: state.disks.clone(),
            volume_groups: state.lvm.volume_groups.clone(),
            windows: state.windows.clone(),
            homes: state.homes.clone(),
            app_dirs: state.app_dirs.clone(),
            capture_hooks: crate::hooks::list(root, crate::hooks::Phase::PreCapture)
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect(),
            setup: None,
        },
        notes,
    )
}

fn existing_ancestor(p: &Path) -> PathBuf {
    let mut p = p.to_path_buf();
    while !p.exists() {
        if !p.pop() {
            return PathBuf::from("/");
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys `findings` (and `gather`) can produce, read from this very
    /// source: the first argument of every `finding(` call, a literal or a constant.
    fn produced_keys() -> Vec<&'static str> {
        let src = include_str!("check.rs");
        let src = src.split("#[cfg(test)]\nmod tests").next().unwrap();
        let consts = [
            ("AGENT_MISSING", AGENT_MISSING),
            ("DATA_PATH_MISSING", DATA_PATH_MISSING),
        ];
        let mut keys = Vec::new();
        for (at, _) in src.match_indices("finding(") {
            let before = src[..at].chars().next_back().unwrap_or(' ');
            if before.is_alphanumeric() || before == '_' {
                continue; // another function's name
            }
            let arg = src[at + "finding(".len()..]
                .split(',')
                .next()
                .unwrap()
                .trim();
            if arg == "key: &str" {
                continue; // the helper's own definition
            }
            let key = match arg.strip_prefix('"') {
                Some(lit) => lit.trim_end_matches('"'),
                None => {
                    consts
                        .iter()
                        .find(|(name, _)| *name == arg)
                        .unwrap_or_else(|| {
                            panic!("a finding key `{arg}`: a literal or a known constant")
                        })
                        .1
                }
            };
            keys.push(key);
        }
        keys
    }

    #[test]
    fn every_key_a_finding_can_have_is_in_keys_and_in_the_readme() {
        let keys = produced_keys();
        assert!(keys.len() >= KEYS.len(), "{keys:?}");
        let readme = include_str!("../README.md");
        for k in keys {
            assert!(
                KEYS.contains(&k),
                "`{k}` is not in check::KEYS (an --ack of it would be refused as a typo)"
            );
            assert!(
                readme.contains(&format!("| `{k}` |")),
                "`{k}` has no line in the README's findings table"
            );
        }
    }
    use crate::disks::fstab::parse_fstab;

    fn mounts() -> Vec<Mount> {
        crate::disks::parse_mountinfo(
            "22 1 254:1 / / rw - ext4 /dev/vda1 rw\n95 22 254:16 / /mnt/data rw - ext4 /dev/mapper/datavg-lvdata rw\n96 22 8:33 / /mnt/win rw - fuseblk /dev/vdc1 rw\n",
        )
    }

    fn keys(f: &[Finding]) -> Vec<&str> {
        f.iter().map(|x| x.key.as_str()).collect()
    }

    #[test]
    fn each_key_fires_when_it_should() {
        let fstab = parse_fstab(
            "UUID=r / ext4 defaults 0 1\n/dev/mapper/datavg-lvdata /mnt/data ext4 defaults 0 2\n/dev/vdc1 /mnt/win ntfs-3g defaults 0 0\n/dev/vdd1 none swap sw 0 0\n/dev/mapper/secret /mnt/secret ext4 defaults 0 0\n",
        );
        let base = Input {
            target: Some(Target::Linux),
            fstab,
            mounts: mounts(),
            crypttab: vec!["secret".into()],
            instance_type: Some("h2.3xlarge.10".into()),
            data_paths: vec![PathBuf::from("/srv"), PathBuf::from("/mnt/data/app")],
            store_dir: Some(PathBuf::from("/var/backups/carryover")),
            store_free: Some(1_000),
            estimate: Some(2_000),
            ..Input::default()
        };
        let f = findings(&base);
        let k = keys(&f);
        for key in [
            "store-on-system-disk",
            "data-path-on-system-disk",
            "store-too-small",
            "flavor-cannot-change-os",
            "fstab-device-name-unstable",
            "swap-on-data-disk",
            "luks-key-needed",
            "ntfs-needs-ntfs3g",
        ] {
            assert!(k.contains(&key), "{key} missing: {k:?}");
        }
        assert_eq!(
            f.iter()
                .filter(|x| x.key == "data-path-on-system-disk")
                .count(),
            1,
            "only /srv"
        );
        assert!(!k.contains(&"lvm-to-windows"));
        let win = findings(&Input {
            target: Some(Target::Windows),
            ..base.clone()
        });
        let k = keys(&win);
        assert!(
            k.contains(&"lvm-to-windows") && k.contains(&"linux-fs-to-windows"),
            "{k:?}"
        );
        assert!(!k.contains(&"ntfs-needs-ntfs3g"));
        let mut blockers = unacknowledged(&f, &["store-too-small".into()]);
        blockers.sort();
        assert_eq!(
            blockers,
            vec!["flavor-cannot-change-os", "store-on-system-disk"]
        );
    }

    #[test]
    fn disks_decide_what_is_on_the_system_disk() {
        use crate::disks::BlockDevice;
        use crate::disks::probe::lvm::PhysicalVolume;
        let dev = |name: &str, dev: &str, disk: &str, mp: &str| BlockDevice {
            name: name.into(),
            dev: dev.into(),
            disks: vec![disk.into()],
            mountpoints: vec![mp.into()],
            ..BlockDevice::default()
        };
        let layout = Layout {
            discovered: true,
            devices: vec![
                dev("vda1", "253:1", "vda", "/"),
                dev("vda2", "253:2", "vda", "/srv"),
                dev("vdb1", "253:17", "vdb", "/mnt/data"),
            ],
            system_disks: vec!["vda".into()],
            data_disks: vec!["vdb".into()],
        };
        let pv = |name: &str, disk: &str| PhysicalVolume {
            name: name.into(),
            disks: vec![disk.into()],
            ..PhysicalVolume::default()
        };
        let spanning = VolumeGroup {
            name: "bigvg".into(),
            pvs: vec![pv("pv0", "vda"), pv("pv1", "vdb")],
            ..VolumeGroup::default()
        };
        let data_only = VolumeGroup {
            name: "datavg".into(),
            pvs: vec![pv("pv0", "vdb")],
            ..VolumeGroup::default()
        };
        let i = Input {
            target: Some(Target::Linux),
            fstab: parse_fstab(
                "UUID=r / ext4 defaults 0 1\nUUID=s /srv ext4 defaults 0 2\nUUID=d /mnt/data ext4 defaults 0 2\n",
            ),
            mounts: crate::disks::parse_mountinfo(
                "1 0 253:1 / / rw - ext4 /dev/vda1 rw\n2 1 253:2 / /srv rw - ext4 /dev/vda2 rw\n3 1 253:17 / /mnt/data rw - ext4 /dev/vdb1 rw\n",
            ),
            store_dir: Some(PathBuf::from("/srv/carryover")),
            data_paths: vec![PathBuf::from("/mnt/data/x")],
            layout,
            volume_groups: vec![spanning, data_only.clone()],
            ..Input::default()
        };
        let f = findings(&i);
        let k = keys(&f);
        assert!(k.contains(&"store-on-system-disk"), "/srv is vda2: {k:?}");
        assert!(k.contains(&"mount-on-system-disk"), "{k:?}");
        assert!(!k.contains(&"data-path-on-system-disk"), "{k:?}");
        let spans: Vec<_> = f
            .iter()
            .filter(|x| x.key == "lvm-vg-spans-system-disk")
            .collect();
        assert_eq!(spans.len(), 1);
        assert!(spans[0].evidence.contains("bigvg: pv0 on vda, pv1 on vdb"));
        // /srv in the data paths: carried by the store, so not a blocker
        let carried = findings(&Input {
            data_paths: vec![PathBuf::from("/srv")],
            volume_groups: vec![data_only],
            store_dir: Some(PathBuf::from("/mnt/data/carryover")),
            ..i.clone()
        });
        assert_eq!(keys(&carried), vec!["data-path-on-system-disk"]);
    }

    #[test]
    fn a_clean_server_has_no_findings() {
        let i = Input {
            target: Some(Target::Linux),
            fstab: parse_fstab("UUID=r / ext4 defaults 0 1\nUUID=d /mnt/data ext4 defaults 0 2\n"),
            mounts: mounts(),
            store_dir: Some(PathBuf::from("/mnt/data/carryover")),
            instance_type: Some("s6.large.2".into()),
            store_free: Some(10),
            estimate: Some(5),
            ..Input::default()
        };
        assert!(findings(&i).is_empty(), "{:?}", findings(&i));
    }

    #[test]
    fn a_windows_system_is_checked_by_its_volumes_and_raw_disks() {
        use crate::state::windows::{DiskContent, WinDisk, WinVolume};
        let vol = |mount: &str, fs: &str, system| WinVolume {
            mount: mount.into(),
            filesystem: fs.into(),
            serial: "1234-ABCD".into(),
            system,
            ..WinVolume::default()
        };
        let part = |partition, kind: &str| DiskContent {
            partition,
            kind: Some(kind.into()),
            ..DiskContent::default()
        };
        let w = WindowsState {
            volumes: vec![
                vol("C:\\", "NTFS", true),
                vol("D:\\", "NTFS", false),
                vol("E:\\", "ReFS", false),
            ],
            disks: vec![
                WinDisk {
                    number: 0,
                    system: true,
                    contents: vec![part(1, "ntfs")],
                },
                WinDisk {
                    number: 1,
                    system: false,
                    contents: vec![part(1, "ntfs"), part(2, "ext4"), part(3, "LVM2_member")],
                },
            ],
            ..WindowsState::default()
        };
        let input = |target| Input {
            target: Some(target),
            store_dir: Some(PathBuf::from("/carryover")),
            data_paths: vec![PathBuf::from("D:\\data"), PathBuf::from("c:\\inetpub")],
            windows: Some(w.clone()),
            ..Input::default()
        };
        let to_linux = findings(&input(Target::Linux));
        let k = keys(&to_linux);
        assert!(
            k.contains(&"store-on-system-disk"),
            "a store on C: (in-root path): {k:?}"
        );
        let ntfs: Vec<_> = to_linux
            .iter()
            .filter(|f| f.key == "ntfs-needs-ntfs3g")
            .collect();
        assert_eq!(ntfs.len(), 1, "D: only, not the system drive: {k:?}");
        assert!(ntfs[0].message.starts_with("D:"));
        assert!(k.contains(&"refs-to-linux"));
        let on_c: Vec<_> = to_linux
            .iter()
            .filter(|f| f.key == "data-path-on-system-disk")
            .collect();
        assert_eq!(on_c.len(), 1);
        assert!(on_c[0].message.contains("inetpub"));
        assert!(!k.contains(&"lvm-to-windows"));
        let windows = findings(&input(Target::Windows));
        let to_windows = keys(&windows);
        assert!(
            to_windows.contains(&"lvm-to-windows") && to_windows.contains(&"linux-fs-to-windows"),
            "{to_windows:?}"
        );
        assert!(
            !to_windows.contains(&"ntfs-needs-ntfs3g") && !to_windows.contains(&"refs-to-linux")
        );
    }
}
