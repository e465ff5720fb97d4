//! The user-data for the cloud's Change OS call: a `#cloud-config` (Linux) or a
//! Cloudbase-Init `#ps1_sysnative` script (Windows) that, on the new OS's first boot,
//! finds the store (its data disk by the filesystem's UUID or serial, or S3), installs the
//! agent kept in the store, and has it restore and report. It carries no secret.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::sys::Root;

/// The cloud's limit on user-data before base64.
pub const MAX_BYTES: usize = 32 * 1024;

/// Where the store is, as the new OS will find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreDisk {
    pub fs_uuid: String,
    pub fstype: String,
    /// The store's path inside that filesystem.
    pub rel: PathBuf,
    /// The filesystem is on LVM: volume groups must be activated first.
    pub lvm: bool,
}

impl StoreDisk {
    /// The store's path inside its filesystem, one name per component (joined with the
    /// new OS's separator).
    fn rel_parts(&self) -> Vec<String> {
        self.rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect()
    }
}

/// Finds the filesystem holding `store` (a local store's directory) from the mount table
/// under `root`, and its UUID from the device's own superblock.
pub fn locate_store(root: &Root, store: &Path) -> Result<StoreDisk> {
    let store =
        std::fs::canonicalize(store).with_context(|| format!("the store {}", store.display()))?;
    if let Some((volume, fstype, serial)) = crate::sys::volume_of(&store) {
        // Windows: the volume's serial finds it again (paths compared without `\\?\`)
        let plain = crate::sys::plain_path;
        let (store, volume) = (plain(store), plain(volume));
        let system = plain(crate::sys::default_root(Path::new("/")));
        if system.as_os_str().eq_ignore_ascii_case(volume.as_os_str()) {
            bail!(
                "the store {} is on the system drive {}, which the Change OS deletes: put it on a data disk",
                store.display(),
                volume.display()
            );
        }
        let rel = store
            .strip_prefix(&volume)
            .unwrap_or(Path::new(""))
            .to_path_buf();
        return Ok(StoreDisk {
            fs_uuid: serial,
            fstype,
            rel,
            lvm: false,
        });
    }
    let table = crate::disks::mount_table(root)
        .with_context(|| format!("reading the mount table ({})", crate::disks::MOUNT_TABLE))?;
    let mount = crate::disks::mount_of(&table, &store)
        .context("no mount holds the store")?
        .clone();
    if mount.mountpoint == Path::new("/") {
        bail!(
            "the store {} is on the root filesystem, which the Change OS deletes: put it on a data disk",
            store.display()
        );
    }
    let sig = crate::disks::probe::probe_path(Path::new(&mount.source)).with_context(|| {
        format!(
            "reading the device {} of {}",
            mount.source,
            mount.mountpoint.display()
        )
    })?;
    let fs_uuid = sig.uuid.with_context(|| {
        format!(
            "the filesystem on {} has no UUID to find it by",
            mount.source
        )
    })?;
    let rel = store
        .strip_prefix(&mount.mountpoint)
        .unwrap_or(Path::new(""))
        .to_path_buf();
    Ok(StoreDisk {
        fs_uuid,
        fstype: sig.kind.unwrap_or(mount.fstype),
        rel,
        lvm: mount.source.starts_with("/dev/mapper/") || mount.source.starts_with("/dev/dm-"),
    })
}

/// The config drop-in the user-data writes on the new OS (`config.d/50-user-data.toml`):
/// `[store]` (its URL; for S3 the endpoint and region, no credentials: the new OS's
/// metadata service has them), `[report]` naming the orchestrator (the token travels in
/// the snapshot) and `[restore]`. Built as a table and serialized by the `toml` crate.
fn config_dropin(
    store_url: &str,
    s3: Option<(Option<&str>, Option<&str>)>,
    report_url: Option<&str>,
    pins: &Pins,
) -> String {
    use toml::{Table, Value};
    let mut store = Table::new();
    store.insert("url".into(), store_url.into());
    if let Some((endpoint, region)) = s3 {
        if let Some(e) = endpoint {
            store.insert("endpoint".into(), e.into());
        }
        if let Some(r) = region {
            store.insert("region".into(), r.into());
        }
    }
    let mut doc = Table::new();
    doc.insert("store".into(), Value::Table(store));
    if let Some(u) = report_url {
        let mut report = Table::new();
        report.insert("url".into(), u.into());
        doc.insert("report".into(), Value::Table(report));
    }
    doc.insert("restore".into(), Value::Table(restore_settings(pins)));
    toml::to_string(&doc).expect("a table of strings, booleans and integers serializes")
}

/// Where the Windows user-data puts the store's URL, found only when it runs (the
/// volume's drive letter): a value no other setting can hold.
const WINDOWS_STORE_URL: &str = "@CARRYOVER_STORE_URL@";

/// Single-quotes a word for sh.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The units the user-data installs when the new OS has no carryover package.
const UNITS: &[(&str, &str)] = &[
    (
        "carryover-restore.service",
        include_str!("../systemd/carryover-restore.service"),
    ),
    (
        "carryover-report.service",
        include_str!("../systemd/carryover-report.service"),
    ),
    (
        "carryover-report.timer",
        include_str!("../systemd/carryover-report.timer"),
    ),
];

/// Where the user-data mounts the store's disk on the new OS.
pub const STORE_MOUNT: &str = "/run/carryover-store";
const MOUNT_SCRIPT: &str = "/usr/local/lib/carryover/mount-store";

/// Writes `content` to `path` (a shell line).
fn write_file(path: &str, content: &str) -> String {
    format!("printf '%s' {} > {path}\n", sh_quote(content))
}

/// How the new OS reaches the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreAccess {
    /// A directory on a data disk, found by its filesystem's UUID.
    Disk(StoreDisk),
    /// Object storage: the agent comes from a presigned URL; restore uses the instance's
    /// own temporary credentials (agency / IAM role) from the metadata service.
    S3 {
        url: String,
        endpoint: Option<String>,
        region: Option<String>,
        agent_url: String,
    },
}

/// The `#cloud-config` for the Change OS call. On the new OS's first boot its `runcmd`
/// installs what reads the store's disk (lvm2, ntfs-3g) when missing and a script that
/// mounts the disk by filesystem UUID (run now and before every restore attempt, so a
/// reboot in the middle of the restore finds the store again) — or, for S3, downloads the
/// agent from a presigned URL — then the agent, a config naming the store and
/// `report_url`, the systemd units when no package brought them; then it enables and
/// starts `carryover-restore.service`, which restores once and reports. No secret: the
/// orchestrator's token travels inside the snapshot, S3 credentials come from the
/// instance's metadata service.
///
/// `agent_key` is where the store keeps the agent for the new OS's architecture (see
/// `crate::agent`); `agent_sha256` pins that file.
pub fn cloud_config(
    access: &StoreAccess,
    report: Option<&ReportTo>,
    agent_key: &str,
    pins: &Pins,
) -> Result<String> {
    check_values(access, report, pins)?;
    let agent_sha256 = pins.agent_sha256.as_str();
    let report_url = report.map(|r| r.url.as_str());
    let mut script = String::from("set -e\nstep='starting'\n");
    if let Some(r) = report {
        script.push_str(&failure_report(r));
    }
    let mut pre_start = None;
    let toml = match access {
        StoreAccess::Disk(d) => {
            // paths on the new Linux, built with '/' whatever this machine uses
            let rel = d.rel_parts();
            let store_path = if rel.is_empty() {
                STORE_MOUNT.to_string()
            } else {
                format!("{STORE_MOUNT}/{}", rel.join("/"))
            };
            if d.lvm || d.fstype == "ntfs" {
                // the new OS may lack the tool that reads the store's disk: its own package
                // manager installs it (apt lists may need a refresh on a fresh image)
                script.push_str(concat!(
                    "need() { command -v \"$1\" >/dev/null 2>&1 && return 0\n",
                    "  if command -v apt-get >/dev/null; then export DEBIAN_FRONTEND=noninteractive\n",
                    "    apt-get install -y -q \"$2\" || { apt-get update -q && apt-get install -y -q \"$2\"; }\n",
                    "  elif command -v dnf >/dev/null; then dnf install -y \"$2\"\n",
                    "  elif command -v yum >/dev/null; then yum install -y \"$2\"\n",
                    "  elif command -v zypper >/dev/null; then zypper --non-interactive install \"$2\"\n",
                    "  fi; }\n",
                ));
            }
            if d.lvm {
                script.push_str("need vgchange lvm2\n");
            }
            if d.fstype == "ntfs" {
                script.push_str("need ntfs-3g ntfs-3g\n");
            }
            let mut mount = String::from(
                "#!/bin/sh\n# carryover: mounts the store's data disk (written by the Change OS user-data)\n",
            );
            if d.lvm {
                mount.push_str(
                    "vgchange -ay >/dev/null 2>&1 || true\nudevadm settle 2>/dev/null || true\n",
                );
            }
            mount.push_str(&format!(
                "mkdir -p {STORE_MOUNT}\nmountpoint -q {STORE_MOUNT} || mount UUID={} {STORE_MOUNT}\n",
                d.fs_uuid
            ));
            script.push_str("mkdir -p /usr/local/lib/carryover\n");
            script.push_str(&write_file(MOUNT_SCRIPT, &mount));
            script.push_str(&format!(
                "chmod 0755 {MOUNT_SCRIPT}\nstep='mounting the store disk (filesystem UUID {})'\n{MOUNT_SCRIPT}\n",
                d.fs_uuid.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "")
            ));
            script.push_str("step='copying the agent from the store'\n");
            let agent = sh_quote(&format!("{store_path}/{agent_key}"));
            script.push_str(&format!("cp {agent} {AGENT_NEW}\n"));
            script.push_str(&verify_agent(agent_sha256));
            pre_start = Some(MOUNT_SCRIPT);
            config_dropin(&store_path, None, report_url, pins)
        }
        StoreAccess::S3 {
            url,
            endpoint,
            region,
            agent_url,
        } => {
            script.push_str(concat!(
                "fetch() { curl -fsSL -o \"$2\" \"$1\" 2>/dev/null || wget -q -O \"$2\" \"$1\" 2>/dev/null ||\n",
                "  python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \"$1\" \"$2\"; }\n",
            ));
            script.push_str("step='downloading the agent from the store'\n");
            script.push_str(&format!(
                "mkdir -p /usr/local/lib/carryover\nfetch {} {AGENT_NEW}\n",
                sh_quote(agent_url)
            ));
            script.push_str(&verify_agent(agent_sha256));
            config_dropin(
                url,
                Some((endpoint.as_deref(), region.as_deref())),
                report_url,
                pins,
            )
        }
    };
    script.push_str("step='writing the configuration and the units'\n");
    script.push_str("mkdir -p /etc/carryover/config.d\nchmod 0700 /etc/carryover\n");
    script.push_str(&write_file(
        "/etc/carryover/config.d/50-user-data.toml",
        &toml,
    ));
    script.push_str("if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then\n");
    for (name, text) in UNITS {
        script.push_str(&format!(
            "[ -e /usr/lib/systemd/system/{name} ] || [ -e /lib/systemd/system/{name} ] || {}",
            write_file(
                &format!("/etc/systemd/system/{name}"),
                &text.replace("/usr/bin/carryover", "/usr/local/bin/carryover")
            )
        ));
    }
    if let Some(pre) = pre_start {
        script.push_str("mkdir -p /etc/systemd/system/carryover-restore.service.d\n");
        script.push_str(&write_file(
            "/etc/systemd/system/carryover-restore.service.d/50-store.conf",
            &format!("[Service]\nExecStartPre={pre}\n"),
        ));
    }
    script.push_str(concat!(
        "systemctl daemon-reload\n",
        "systemctl enable carryover-restore.service carryover-report.timer\n",
        "systemctl start --no-block carryover-restore.service\n",
        "else\n",
        "exec /usr/local/bin/carryover restore -v\n",
        "fi\n",
    ));
    let mut out = String::from(
        "#cloud-config\n# carryover: restore this server's settings and data after the Change OS.\n# It brings the agent from the store and starts carryover-restore.service, which\n# restores and reports to the orchestrator. No secret is in here.\n",
    );
    out.push_str("runcmd:\n  - - sh\n    - -c\n    - |\n");
    for line in script.lines() {
        out.push_str("      ");
        out.push_str(line);
        out.push('\n');
    }
    Ok(out)
}

/// Where the agent is copied (from the store's disk) or downloaded (from S3) before its
/// SHA-256 is checked: it is installed only when it is the agent the user-data names.
const AGENT_NEW: &str = "/usr/local/lib/carryover/agent.new";

/// Checks the agent at `AGENT_NEW` against the SHA-256 the user-data carries, then installs
/// it: a store whose agent was swapped cannot run its own code as root on the new OS.
fn verify_agent(sha256: &str) -> String {
    format!(
        concat!(
            "step='checking the agent against its SHA-256 {sha}'\n",
            "echo '{sha}  {new}' | sha256sum -c --quiet - || {{ echo 'carryover: the agent in the store is not the one this user-data names (SHA-256 mismatch): not installed' >&2; rm -f {new}; exit 1; }}\n",
            "step='installing the agent'\n",
            "install -m 0755 {new} /usr/local/bin/carryover\n",
            "rm -f {new}\n",
        ),
        sha = sha256,
        new = AGENT_NEW
    )
}

/// True for a character that must never reach the user-data from a value: a control
/// character (CR, NUL, NEL…) or a Unicode line or paragraph separator would start a new
/// YAML line (a new top-level cloud-config key) or a new shell command.
fn breaks_lines(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}')
}

/// Refuses every value the user-data would carry that could break out of its place.
fn check_values(access: &StoreAccess, report: Option<&ReportTo>, pins: &Pins) -> Result<()> {
    let agent_sha256 = pins.agent_sha256.as_str();
    if let Some(id) = &pins.not_before
        && !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        bail!("the snapshot id '{id}' is not one carryover makes");
    }
    let mut values: Vec<(&str, String)> = Vec::new();
    match access {
        StoreAccess::Disk(d) => {
            values.push(("the store's path", d.rel.to_string_lossy().into_owned()));
            values.push(("the store's filesystem UUID", d.fs_uuid.clone()));
            values.push(("the store's filesystem type", d.fstype.clone()));
        }
        StoreAccess::S3 {
            url,
            endpoint,
            region,
            agent_url,
        } => {
            values.push(("the store URL", url.clone()));
            values.extend(endpoint.iter().map(|e| ("the S3 endpoint", e.clone())));
            values.extend(region.iter().map(|r| ("the S3 region", r.clone())));
            values.push(("the agent's URL", agent_url.clone()));
        }
    }
    if let Some(r) = report {
        values.push(("[report] url", r.url.clone()));
        values.extend(r.instance_id.iter().map(|i| ("the instance id", i.clone())));
    }
    for (what, v) in values {
        if let Some(c) = v.chars().find(|c| breaks_lines(*c)) {
            bail!(
                "{what} holds the character U+{:04X}, which would break the user-data: refused",
                c as u32
            );
        }
    }
    if agent_sha256.len() != 64 || !agent_sha256.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("the agent's SHA-256 is not 64 hex digits");
    }
    Ok(())
}

/// Where the user-data tells the orchestrator that it failed before the agent could.
#[derive(Debug, Clone)]
pub struct ReportTo {
    pub url: String,
    /// The instance the events are about; the shell's own failure report needs it.
    pub instance_id: Option<String>,
}

/// What the user-data pins from the old OS: the agent's SHA-256, and the newest snapshot
/// of this instance when the user-data was made (restore refuses anything older: a store
/// whose newer snapshots were removed is a rollback).
#[derive(Debug, Clone, Default)]
pub struct Pins {
    pub agent_sha256: String,
    pub not_before: Option<String>,
    /// The old OS's `[restore] packages = "report"`, carried to the new OS's config.
    pub packages_report: bool,
    /// The old OS's `[restore] ready_timeout_seconds`, when set.
    pub ready_timeout_seconds: Option<u64>,
}

/// `[restore]`: a restore is expected here (see `[restore] expected`), of a snapshot not
/// older than `not_before`.
fn restore_settings(pins: &Pins) -> toml::Table {
    let mut t = toml::Table::new();
    t.insert("expected".into(), true.into());
    if let Some(id) = &pins.not_before {
        t.insert("not_before".into(), id.as_str().into());
    }
    if pins.packages_report {
        t.insert("packages".into(), "report".into());
    }
    if let Some(secs) = pins.ready_timeout_seconds {
        t.insert(
            "ready_timeout_seconds".into(),
            i64::try_from(secs).unwrap_or(i64::MAX).into(),
        );
    }
    t
}

/// True for an instance id that can stand in a URL path and a JSON string as it is.
fn plain_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// A shell trap that, when the script fails before the agent runs (the store's disk does
/// not mount, the agent cannot be installed), posts `restore`/`failed` naming the step to
/// the orchestrator with curl, wget or python3 — the agent's own reporting is not there yet.
fn failure_report(r: &ReportTo) -> String {
    let Some(id) = r.instance_id.as_deref().filter(|i| plain_id(i)) else {
        return String::new();
    };
    let url = sh_quote(&format!("{}/v1/instances/{id}/events", r.url));
    let mut s = String::from("report_failed() {\n  rc=$?\n  [ \"$rc\" -eq 0 ] && return 0\n");
    s.push_str(
        "  ev=$(cat /proc/sys/kernel/random/uuid 2>/dev/null || echo 00000000-0000-4000-8000-$(date +%s%N | tail -c 13))\n",
    );
    s.push_str("  at=$(date -u +%Y-%m-%dT%H:%M:%SZ)\n");
    s.push_str(&format!(
        "  body='{{\"event_id\":\"'\"$ev\"'\",\"instance_id\":\"{id}\",\"phase\":\"restore\",\"state\":\"failed\",\"snapshot_id\":null,\"agent_version\":\"{}\",\"at\":\"'\"$at\"'\",\"findings\":[],\"steps\":[],\"failed_files\":[],\"failed_files_total\":0,\"message\":\"the Change OS user-data failed while '\"$step\"' (exit '\"$rc\"'): the agent never ran\"}}'\n",
        env!("CARGO_PKG_VERSION")
    ));
    s.push_str(&format!("  url={url}\n"));
    s.push_str(concat!(
        "  for try in 1 2 3 4 5; do\n",
        "    curl -fsS -m 20 -H 'Content-Type: application/json' -H \"Idempotency-Key: $ev\" -d \"$body\" \"$url\" >/dev/null 2>&1 && break\n",
        "    wget -q -T 20 -O /dev/null --header 'Content-Type: application/json' --header \"Idempotency-Key: $ev\" --post-data \"$body\" \"$url\" 2>/dev/null && break\n",
        "    python3 -c 'import sys, urllib.request as u; u.urlopen(u.Request(sys.argv[1], sys.argv[2].encode(), {\"Content-Type\": \"application/json\", \"Idempotency-Key\": sys.argv[3]}), timeout=20)' \"$url\" \"$body\" \"$ev\" 2>/dev/null && break\n",
        "    sleep $((try * 3))\n",
        "  done\n",
        "  return $rc\n",
        "}\n",
        "trap report_failed EXIT\n",
    ));
    s
}

/// The PowerShell counterpart of `failure_report`: a `trap` that posts `restore`/`failed`
/// with the error when the script stops before the service runs.
fn ps_failure_report(r: &ReportTo) -> String {
    let Some(id) = r.instance_id.as_deref().filter(|i| plain_id(i)) else {
        return String::new();
    };
    format!(
        concat!(
            "trap {{\n",
            "  $ev = [guid]::NewGuid().ToString()\n",
            "  $body = @{{ event_id = $ev; instance_id = '{id}'; phase = 'restore'; state = 'failed'; snapshot_id = $null; agent_version = '{version}';\n",
            "    at = (Get-Date).ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ'); findings = @(); steps = @(); failed_files = @(); failed_files_total = 0;\n",
            "    message = 'the Change OS user-data failed: ' + $_.Exception.Message + ': the agent never ran' }} | ConvertTo-Json\n",
            "  for ($t = 1; $t -le 5; $t++) {{\n",
            "    try {{ Invoke-RestMethod -UseBasicParsing -Method Post -Uri {url} -ContentType 'application/json' -Headers @{{ 'Idempotency-Key' = $ev }} -Body $body | Out-Null; break }}\n",
            "    catch {{ Start-Sleep -Seconds (3 * $t) }}\n",
            "  }}\n",
            "  break\n",
            "}}\n",
        ),
        id = id,
        version = env!("CARGO_PKG_VERSION"),
        url = ps_quote(&format!("{}/v1/instances/{id}/events", r.url)),
    )
}

/// Quotes a string for PowerShell (single quotes, `'` doubled).
fn ps_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The 32-bit volume serial Windows shows for a filesystem UUID (NTFS's 64-bit serial
/// ends with it; FAT and exFAT's `1234-ABCD` is it).
pub fn windows_serial(fs_uuid: &str) -> Option<String> {
    let hex: String = fs_uuid.chars().filter(|c| *c != '-').collect();
    (hex.len() >= 8 && hex.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| hex[hex.len() - 8..].to_ascii_uppercase())
}

/// Refuses a store disk a fresh Windows cannot read (ext, xfs, LVM, …).
pub fn windows_can_read(d: &StoreDisk) -> Result<()> {
    let readable = ["ntfs", "vfat", "exfat"].contains(&d.fstype.as_str());
    if d.lvm || !readable {
        bail!(
            "the store is on {}{}, which Windows cannot read: for a change to Windows keep the store on an NTFS data disk or in S3",
            d.fstype,
            if d.lvm { " on LVM" } else { "" }
        );
    }
    Ok(())
}

/// The Cloudbase-Init user-data (`#ps1_sysnative`, run as LocalSystem on the first boot)
/// for a change to Windows. It brings the data disks online, finds the store's volume by
/// its serial (or downloads the agent from S3), puts the agent in Program Files, writes
/// `config.d\50-user-data.toml` naming the store (and `report_url`), registers the
/// carryover service and starts it: the service restores and reports. No secret.
pub fn ps1_user_data(
    access: &StoreAccess,
    report: Option<&ReportTo>,
    pins: &Pins,
) -> Result<String> {
    check_values(access, report, pins)?;
    let agent_sha256 = pins.agent_sha256.as_str();
    let report_url = report.map(|r| r.url.as_str());
    let mut ps = String::from(concat!(
        "#ps1_sysnative\n",
        "# carryover: restore this server's settings and data after the Change OS.\n",
        "# It brings the agent from the store, registers the carryover service and starts it;\n",
        "# the service restores and reports to the orchestrator. No secret is in here.\n",
        "$ErrorActionPreference = 'Stop'\n",
        "$bin = Join-Path $env:ProgramFiles 'carryover'\n",
        "$etc = Join-Path $env:ProgramData 'carryover'\n",
        "New-Item -ItemType Directory -Force -Path $bin, (Join-Path $etc 'config.d') | Out-Null\n",
        "$exe = Join-Path $bin 'carryover.exe'\n",
    ));
    if let Some(r) = report {
        ps.push_str(&ps_failure_report(r));
    }
    let mut s3 = None;
    match access {
        StoreAccess::Disk(d) => {
            windows_can_read(d)?;
            let serial = windows_serial(&d.fs_uuid).with_context(|| {
                format!("the filesystem UUID {} is not a volume serial", d.fs_uuid)
            })?;
            let rel = d.rel_parts();
            ps.push_str(&format!(
                concat!(
                    "# a fresh Windows may keep new disks offline (SAN policy)\n",
                    "Get-Disk | Where-Object {{ $_.IsOffline }} | Set-Disk -IsOffline $false\n",
                    "Get-Disk | Where-Object {{ $_.IsReadOnly }} | Set-Disk -IsReadOnly $false\n",
                    "$vol = $null\n",
                    "for ($i = 0; $i -lt 60 -and -not $vol; $i++) {{\n",
                    "  $vol = Get-CimInstance Win32_Volume | Where-Object {{ $_.SerialNumber -ne $null -and ('{{0:X8}}' -f [uint32]$_.SerialNumber) -eq '{serial}' }} | Select-Object -First 1\n",
                    "  if (-not $vol) {{ Start-Sleep -Seconds 5 }}\n",
                    "}}\n",
                    "if (-not $vol) {{ throw 'carryover: no volume with serial {dashed} (the store''s data disk)' }}\n",
                    "if ($vol.DriveLetter) {{ $store = $vol.DriveLetter + '\\' }} else {{ $store = $vol.DeviceID }}\n",
                ),
                serial = serial,
                dashed = format!("{}-{}", &serial[..4], &serial[4..]),
            ));
            if !rel.is_empty() {
                ps.push_str(&format!(
                    "$store = Join-Path $store {}\n",
                    ps_quote(&rel.join("\\"))
                ));
            }
            ps.push_str(&format!(
                "Copy-Item -Force (Join-Path $store {}) \"$exe.new\"\n",
                ps_quote(&crate::agent::WINDOWS_KEY.replace('/', "\\"))
            ));
        }
        StoreAccess::S3 {
            url,
            endpoint,
            region,
            agent_url,
        } => {
            ps.push_str(&format!(
                concat!(
                    "[Net.ServicePointManager]::SecurityProtocol = [Net.SecurityProtocolType]::Tls12\n",
                    "Invoke-WebRequest -UseBasicParsing -Uri {} -OutFile \"$exe.new\"\n",
                    "$store = {}\n",
                ),
                ps_quote(agent_url),
                ps_quote(url)
            ));
            s3 = Some((endpoint.as_deref(), region.as_deref()));
        }
    }
    let toml = config_dropin(WINDOWS_STORE_URL, s3, report_url, pins);
    // installed only when it is the agent this script names
    ps.push_str(&format!(
        concat!(
            "if ((Get-FileHash -Algorithm SHA256 \"$exe.new\").Hash -ne '{}') {{ Remove-Item -Force \"$exe.new\"; throw 'carryover: the agent in the store is not the one this user-data names (SHA-256 mismatch): not installed' }}\n",
            "Move-Item -Force \"$exe.new\" $exe\n",
        ),
        agent_sha256.to_ascii_uppercase()
    ));
    ps.push_str(&format!(
        concat!(
            "$url = '\"' + $store.Replace('\\', '\\\\').Replace('\"', '\\\"') + '\"'\n",
            "$toml = {}.Replace({}, $url)\n",
            "[IO.File]::WriteAllText((Join-Path $etc 'config.d\\50-user-data.toml'), $toml)\n",
            "& $exe service install\n",
            "if ($LASTEXITCODE -ne 0) {{ throw \"carryover: service install failed ($LASTEXITCODE)\" }}\n",
            "Start-Service carryover\n",
        ),
        ps_quote(&toml),
        ps_quote(&format!("\"{WINDOWS_STORE_URL}\""))
    ));
    Ok(ps)
}

/// How long the presigned agent URL of an S3 store stays valid (SigV4's maximum).
const AGENT_URL_VALID: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// What `carryover userdata` is asked for.
pub struct Request<'a> {
    pub root: &'a crate::sys::Root,
    pub config: &'a crate::config::Config,
    /// The OS family of the new OS.
    pub os: crate::config::Target,
    /// The new OS's architecture (default: this machine's; Windows: x86_64).
    pub arch: Option<crate::agent::Arch>,
    /// An agent to put into the store first (it must be the new OS's).
    pub agent: Option<&'a std::path::Path>,
    /// The store named on the command line (else the config's).
    pub store: Option<&'a str>,
}

/// The use case: the user-data for the Change OS call — where the store is (a store the
/// change would delete is refused), the new OS's agent pinned by its SHA-256, the newest
/// snapshot of this instance, the report URL — within the cloud's 32 KB.
pub fn run(req: &Request) -> anyhow::Result<String> {
    use crate::agent::{self, Arch, Platform};
    use crate::config::Target;
    use crate::error::Error;
    use crate::store::s3;
    use anyhow::Context;
    let url = crate::store::resolve_url(req.store, req.config)?;
    // the agent for the new OS: its family, on this machine's architecture unless named
    // (Windows has one build, x86_64)
    let want = Platform {
        os: req.os,
        arch: req.arch.unwrap_or(match req.os {
            Target::Linux => Arch::this(),
            Target::Windows => Arch::X86_64,
        }),
    };
    want.key()
        .map_err(|e| Error::Usage(format!("--arch: {e}")))?;
    // where the store is first: a store the change would delete is refused before anything
    let disk = match crate::store::StoreUrl::parse(&url)?.local_dir() {
        Some(dir) => Some(locate_store(req.root, dir)?),
        None => None,
    };
    if let (Some(d), Target::Windows) = (&disk, req.os) {
        windows_can_read(d)?;
    }
    let (_, st) = crate::store::open_configured(req.root, req.config, Some(&url), false)?;
    if let Some(file) = req.agent {
        let bytes =
            std::fs::read(file).with_context(|| format!("reading the agent {}", file.display()))?;
        let got = agent::keep(st.backend(), &bytes)
            .map_err(|e| Error::Usage(format!("--agent {}: {e}", file.display())))?;
        if got != want {
            return Err(Error::Usage(format!(
                "--agent {} is the agent for {got}, not for {want}",
                file.display()
            ))
            .into());
        }
    }
    let Some((key, bytes)) = agent::load(st.backend(), want)? else {
        anyhow::bail!(
            "{} holds no agent for {want} ({}): run `carryover capture` there with it, or give it with --agent FILE (packaging/build-linux builds both Linux architectures)",
            st.describe(),
            want.key()?
        );
    };
    // the user-data pins the agent by its SHA-256: the new OS installs it only if the
    // store still holds this very file
    let agent_sha256 = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    let access = match disk {
        Some(d) => StoreAccess::Disk(d),
        None => StoreAccess::S3 {
            url: url.clone(),
            endpoint: s3::setting(
                req.config.store.endpoint.as_ref(),
                &["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"],
            ),
            region: s3::setting(
                req.config.store.region.as_ref(),
                &["AWS_REGION", "AWS_DEFAULT_REGION"],
            ),
            agent_url: st
                .backend()
                .presigned_get(key, AGENT_URL_VALID)
                .ok_or(Error::NotAvailable("a download URL for this store"))?,
        },
    };
    // the instance the user-data's own failure report is about (the old OS's id is the
    // new one's: Change OS keeps it)
    let g = crate::state::Gather::new(req.root, req.config);
    let instance = crate::state::identity::instance(&g).0;
    let report = req.config.report_url.as_ref().map(|url| ReportTo {
        url: url.clone(),
        instance_id: instance.clone(),
    });
    // the newest snapshot of this instance now: the new OS refuses to restore an older one
    let not_before = st
        .list()?
        .into_iter()
        .rev()
        .find(|m| m.instance_id.is_some() && m.instance_id == instance)
        .map(|m| m.id);
    let pins = Pins {
        agent_sha256,
        not_before,
        packages_report: !req.config.restore_install_packages,
        ready_timeout_seconds: (req.config.ready_timeout_seconds
            != crate::config::Config::default().ready_timeout_seconds)
            .then_some(req.config.ready_timeout_seconds),
    };
    let text = match req.os {
        Target::Linux => cloud_config(&access, report.as_ref(), key, &pins)?,
        Target::Windows => ps1_user_data(&access, report.as_ref(), &pins)?,
    };
    if text.len() > MAX_BYTES {
        anyhow::bail!(
            "the user-data is {} bytes, over the cloud's 32 KB",
            text.len()
        );
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn pins() -> Pins {
        Pins {
            agent_sha256: SHA.into(),
            ..Default::default()
        }
    }

    #[test]
    fn windows_user_data_finds_the_store_by_serial_and_starts_the_service() {
        let d = StoreDisk {
            fs_uuid: "0729013E1605499F".into(),
            fstype: "ntfs".into(),
            rel: PathBuf::from("fleet/it's"),
            lvm: false,
        };
        let report = ReportTo {
            url: "https://o.example/api".into(),
            instance_id: Some("4c4c4544-0042".into()),
        };
        let ps = ps1_user_data(&StoreAccess::Disk(d.clone()), Some(&report), &pins()).unwrap();
        assert!(
            ps.contains("trap {")
                && ps.contains("-Uri 'https://o.example/api/v1/instances/4c4c4544-0042/events'"),
            "{ps}"
        );
        assert!(ps.starts_with("#ps1_sysnative\n") && ps.len() < MAX_BYTES);
        assert!(ps.contains("-eq '1605499F'"), "{ps}");
        assert!(
            ps.contains("$store = Join-Path $store 'fleet\\it''s'"),
            "{ps}"
        );
        assert!(
            ps.contains("(Join-Path $store 'agent\\carryover.exe') \"$exe.new\""),
            "{ps}"
        );
        assert!(
            ps.contains(&format!(
                "(Get-FileHash -Algorithm SHA256 \"$exe.new\").Hash -ne '{}'",
                SHA.to_ascii_uppercase()
            )),
            "{ps}"
        );
        // the drop-in is TOML once the store's URL is put in
        let quoted = ps
            .split_once("$toml = '")
            .and_then(|(_, r)| r.split_once("'.Replace('\"@CARRYOVER_STORE_URL@\"', $url)"))
            .map(|(t, _)| t.replace("''", "'"))
            .expect("the drop-in in the script");
        let dropin: toml::Table = quoted
            .replace("\"@CARRYOVER_STORE_URL@\"", "\"E:\\\\fleet\"")
            .parse()
            .unwrap();
        assert_eq!(dropin["store"]["url"].as_str(), Some("E:\\fleet"));
        assert_eq!(
            dropin["report"]["url"].as_str(),
            Some("https://o.example/api")
        );
        assert_eq!(dropin["restore"]["expected"].as_bool(), Some(true));
        assert!(ps.contains("& $exe service install") && ps.contains("Start-Service carryover"));
        let ext = StoreDisk {
            fstype: "ext4".into(),
            ..d.clone()
        };
        let e = ps1_user_data(&StoreAccess::Disk(ext), None, &pins())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ext4") && e.contains("Windows cannot read"),
            "{e}"
        );
        let lvm = StoreDisk { lvm: true, ..d };
        assert!(ps1_user_data(&StoreAccess::Disk(lvm), None, &pins()).is_err());
        assert_eq!(windows_serial("1234-ABCD").as_deref(), Some("1234ABCD"));
        assert_eq!(windows_serial("nope"), None);
    }

    #[test]
    fn cloud_config_is_yaml_small_and_quotes_paths() {
        let d = StoreDisk {
            fs_uuid: "0b6e1b0c-1111-4222-8333-444455556666".into(),
            fstype: "ext4".into(),
            rel: PathBuf::from("it's/carryover"),
            lvm: true,
        };
        let report = ReportTo {
            url: "https://orch.example.com/api".into(),
            instance_id: Some("i-0123".into()),
        };
        let pins = Pins {
            not_before: Some("20261201T120000000Z-0a1b2c3d".into()),
            packages_report: true,
            ready_timeout_seconds: Some(300),
            ..pins()
        };
        let c = cloud_config(
            &StoreAccess::Disk(d),
            Some(&report),
            crate::agent::LEGACY_KEY,
            &pins,
        )
        .unwrap();
        assert!(
            c.contains("not_before = \"20261201T120000000Z-0a1b2c3d\""),
            "{c}"
        );
        // the operator's [restore] settings travel with it
        assert!(c.contains("packages = \"report\""), "{c}");
        assert!(c.contains("ready_timeout_seconds = 300"), "{c}");
        assert!(c.starts_with("#cloud-config\n"));
        assert!(c.len() < MAX_BYTES);
        let docs = yaml_rust2::YamlLoader::load_from_str(&c).unwrap();
        let cmd = &docs[0]["runcmd"][0];
        assert_eq!(cmd[0].as_str(), Some("sh"));
        let script = cmd[2].as_str().unwrap();
        assert!(
            script.contains("mount UUID=0b6e1b0c-1111-4222-8333-444455556666 /run/carryover-store")
        );
        assert!(script.contains("need vgchange lvm2\n"), "{script}");
        assert!(script.contains("vgchange -ay >/dev/null"), "{script}");
        assert!(
            script.contains("ExecStartPre=/usr/local/lib/carryover/mount-store"),
            "{script}"
        );
        assert!(script.contains("ExecStart=/usr/local/bin/carryover restore --if-due"));
        assert!(script.contains("systemctl start --no-block carryover-restore.service"));
        assert!(script.contains("apt-get install -y -q \"$2\""), "{script}");
        #[cfg(unix)]
        {
            let syntax = std::process::Command::new("sh")
                .args(["-n", "-c", script])
                .status()
                .unwrap();
            assert!(syntax.success(), "sh -n: {script}");
        }
        assert!(
            script.contains("url = \"https://orch.example.com/api\""),
            "{script}"
        );
        assert!(
            script.contains(
                "cp '/run/carryover-store/it'\\''s/carryover/agent/carryover' /usr/local/lib/carryover/agent.new"
            ),
            "{script}"
        );
    }
}
