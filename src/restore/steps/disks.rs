//! Restore steps for data disks: the tools the new OS needs to read them (lvm2, ntfs-3g,
//! installed through its own package manager), their volume groups activated, and their
//! fstab entries — by filesystem UUID where the old fstab named a device — merged into the
//! new OS's fstab with `nofail`, mounted and checked.

use std::path::Path;

use anyhow::Result;

use crate::disks::fstab::{self, MountEntry};
use crate::disks::probe::lvm::VolumeGroup;
use crate::restore::Loaded;
use crate::restore::apply::{Apply, Outcome};

/// The new OS's package manager and the commands that install `pkg` with it (the second,
/// when the first fails, refreshes the package lists first).
pub fn install_commands(a: &Apply, pkg: &str) -> Option<(&'static str, Vec<Vec<String>>)> {
    let v = |args: &[&str]| args.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let apt = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"];
    let managers: [(&str, Vec<Vec<String>>); 5] = [
        (
            "apt-get",
            vec![
                v(&[&apt[..], &["install", "-y", "-q", pkg]].concat()),
                v(&[&apt[..], &["update", "-q"]].concat()),
                v(&[&apt[..], &["install", "-y", "-q", pkg]].concat()),
            ],
        ),
        ("dnf", vec![v(&["dnf", "install", "-y", pkg])]),
        ("yum", vec![v(&["yum", "install", "-y", pkg])]),
        (
            "zypper",
            vec![v(&["zypper", "--non-interactive", "install", pkg])],
        ),
        ("apk", vec![v(&["apk", "add", pkg])]),
    ];
    managers.into_iter().find(|(m, _)| a.has_tool(&[m]))
}

/// Runs the install commands: the first, or (apt) the refresh and the retry.
fn install(cmds: &[Vec<String>]) -> std::io::Result<()> {
    let run = |c: &Vec<String>| {
        let args: Vec<&str> = c[1..].iter().map(String::as_str).collect();
        crate::sys::run(&c[0], &args).map(|_| ())
    };
    match run(&cmds[0]) {
        Ok(()) => Ok(()),
        Err(e) if cmds.len() == 1 => Err(e),
        Err(_) => cmds[1..].iter().try_for_each(run),
    }
}

/// The volume groups with a PV on a data disk (a group only on the system disk went with it).
fn data_volume_groups(l: &Loaded) -> Vec<&VolumeGroup> {
    let system = &l.state.disks.system_disks;
    l.state
        .lvm
        .volume_groups
        .iter()
        .filter(|vg| {
            vg.pvs
                .iter()
                .any(|pv| pv.disks.is_empty() || pv.disks.iter().any(|d| !system.contains(d)))
        })
        .collect()
}

fn is_ntfs(fstype: &str) -> bool {
    fstype == "ntfs" || fstype == "ntfs-3g"
}

fn safe_vg_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+_.-".contains(c))
}

pub fn volumes(a: &Apply, l: &Loaded) -> Result<Outcome> {
    let vgs = data_volume_groups(l);
    let ntfs = l
        .state
        .mounts
        .iter()
        .any(|m| m.is_data() && is_ntfs(&m.fstype));
    if vgs.is_empty() && !ntfs {
        return Ok(Outcome::skipped(
            "no LVM volume groups or NTFS filesystems on the data disks",
        ));
    }
    let mut warnings = Vec::new();
    let mut done = Vec::new();
    let mut needs: Vec<(&str, &[&str])> = Vec::new();
    if !vgs.is_empty() {
        needs.push(("lvm2", &["vgchange", "lvm"]));
    }
    if ntfs {
        needs.push(("ntfs-3g", &["ntfs-3g", "mount.ntfs-3g"]));
    }
    for (pkg, tools) in needs {
        if a.has_tool(tools) {
            done.push(format!("{pkg} present"));
            continue;
        }
        if !a.root.is_live() {
            warnings.push(format!(
                "{pkg} is not installed on the new OS: install it there (restore on the live system installs it)"
            ));
            continue;
        }
        let Some((manager, cmds)) = install_commands(a, pkg) else {
            return Ok(Outcome::failed(format!(
                "{pkg} is needed for the data disks and no package manager (apt-get, dnf, yum, zypper, apk) was found"
            )));
        };
        a.mark_changed();
        if !a.dry_run
            && let Err(e) = install(&cmds)
        {
            return Ok(Outcome::failed(format!(
                "installing {pkg} with {manager}: {e}"
            )));
        }
        done.push(format!("{pkg} installed with {manager}"));
    }
    if a.root.is_live() {
        for vg in &vgs {
            if !safe_vg_name(&vg.name) {
                return Ok(Outcome::failed(format!(
                    "refusing the volume group name {}",
                    crate::units::quoted(&vg.name)
                )));
            }
            let dir = format!("/dev/{}", vg.name);
            if Path::new(&dir).is_dir() {
                done.push(format!("{} active", vg.name));
                continue;
            }
            a.mark_changed();
            if a.dry_run {
                done.push(format!("would activate {}", vg.name));
                continue;
            }
            if let Err(e) = crate::sys::run("vgchange", &["-ay", &vg.name]) {
                return Ok(Outcome::failed(format!(
                    "activating volume group {}: {e}",
                    vg.name
                )));
            }
            let _ = crate::sys::run("udevadm", &["settle"]);
            if !Path::new(&dir).is_dir() {
                return Ok(Outcome::failed(format!(
                    "volume group {} has no volumes in {dir} after vgchange -ay",
                    vg.name
                )));
            }
            done.push(format!("{} activated", vg.name));
        }
    } else if !vgs.is_empty() {
        let names: Vec<&str> = vgs.iter().map(|v| v.name.as_str()).collect();
        done.push(format!(
            "volume groups {} are activated on the live system",
            names.join(", ")
        ));
    }
    Ok(a.finish(done.join("; "), warnings))
}

/// The data-disk entries as they go into the new fstab: an entry that named a device
/// (`/dev/vdb1`, which may be another disk after the change) is written by the UUID the
/// capture read from that device.
pub(super) fn by_uuid(l: &Loaded, warnings: &mut Vec<String>) -> Vec<MountEntry> {
    l.state
        .mounts
        .iter()
        .map(|m| {
            let mut m = m.clone();
            if m.is_data()
                && m.spec_kind == "device"
                && let Some(d) = l.state.disks.device_of_source(&m.spec)
                && let Some(uuid) = &d.uuid
                && d.fstype.as_deref().is_some_and(|t| {
                    t == m.fstype || (m.swap && t == "swap") || (is_ntfs(&m.fstype) && t == "ntfs")
                })
            {
                warnings.push(format!(
                    "{} was {} in the old fstab: written as UUID={uuid}, which survives device renames",
                    if m.swap { "swap" } else { &m.mountpoint },
                    m.spec
                ));
                m.spec = format!("UUID={uuid}");
                m.spec_kind = "uuid".into();
            }
            m
        })
        .collect()
}

pub fn fstab(a: &Apply, l: &Loaded) -> Result<Outcome> {
    let mut warnings = Vec::new();
    let entries = by_uuid(l, &mut warnings);
    let data: Vec<&MountEntry> = entries.iter().filter(|m| m.is_data()).collect();
    if data.is_empty() {
        return Ok(Outcome::skipped("no data-disk entries in the old fstab"));
    }
    if let Some(why) = data.iter().find_map(|m| fstab::refused(m)) {
        return Ok(Outcome::failed(why));
    }
    let current = a.read("/etc/fstab").unwrap_or_default();
    let (merged, clashes) = fstab::merge_fstab(&current, &entries);
    warnings.extend(clashes);
    for m in &data {
        if !m.swap && super::safe_path(&m.mountpoint, &["/"]).is_err() {
            return Ok(Outcome::failed(format!(
                "refusing the mountpoint {}",
                crate::units::quoted(&m.mountpoint)
            )));
        }
        if m.spec_kind == "device" {
            warnings.push(format!(
                "{} is named by device ({}): such names can change between boots; a UUID is safer",
                m.mountpoint, m.spec
            ));
        }
    }
    a.rewrite("/etc/fstab", &merged)?;
    for m in data.iter().filter(|m| !m.swap) {
        a.mkdir(&m.mountpoint, 0o755, None)?;
    }
    // On the live system the data disks are mounted now, before the data step restores
    // into paths that may live on them, and each is checked.
    if a.root.is_live() && !a.dry_run {
        if let Err(e) = crate::sys::run("mount", &["-a"]) {
            return Ok(Outcome::failed(format!(
                "fstab written; mounting failed: {e}"
            )));
        }
        // the root is the live system here: its table is the one `mount -a` just changed
        let mounted = crate::disks::mount_table(a.root).unwrap_or_default();
        let missing: Vec<&str> = data
            .iter()
            .filter(|m| !m.swap && !m.options.iter().any(|o| o == "noauto"))
            .filter(|m| {
                !mounted
                    .iter()
                    .any(|x| x.mountpoint == Path::new(&m.mountpoint))
            })
            .map(|m| m.mountpoint.as_str())
            .collect();
        if !missing.is_empty() {
            return Ok(Outcome::failed(format!(
                "fstab written; not mounted after mount -a: {}",
                missing.join(", ")
            )));
        }
    }
    let names: Vec<&str> = data
        .iter()
        .map(|m| {
            if m.swap {
                "swap"
            } else {
                m.mountpoint.as_str()
            }
        })
        .collect();
    Ok(a.finish(names.join(", "), warnings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::Root;

    fn root_with(tools: &[&str]) -> (tempfile::TempDir, Root) {
        let t = tempfile::tempdir().unwrap();
        for tool in tools {
            let p = t.path().join(tool.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        }
        let r = Root::new(t.path()).unwrap();
        (t, r)
    }

    #[test]
    fn the_new_os_package_manager_installs_the_disk_tools() {
        let (_t, r) = root_with(&["/usr/bin/apt-get", "/usr/bin/dnf"]);
        let a = Apply::new(&r, "s", true);
        let (m, cmds) = install_commands(&a, "lvm2").unwrap();
        assert_eq!(m, "apt-get");
        assert_eq!(
            cmds[0],
            [
                "env",
                "DEBIAN_FRONTEND=noninteractive",
                "apt-get",
                "install",
                "-y",
                "-q",
                "lvm2"
            ]
        );
        assert_eq!(cmds[1][3], "update", "a refresh, then the retry");
        let (_t, r) = root_with(&["/usr/bin/zypper"]);
        let a = Apply::new(&r, "s", true);
        let (m, cmds) = install_commands(&a, "ntfs-3g").unwrap();
        assert_eq!((m, cmds.len()), ("zypper", 1));
        assert_eq!(
            cmds[0],
            ["zypper", "--non-interactive", "install", "ntfs-3g"]
        );
        let (_t, r) = root_with(&["/sbin/vgchange"]);
        let a = Apply::new(&r, "s", true);
        assert!(install_commands(&a, "lvm2").is_none());
        assert!(a.has_tool(&["vgchange", "lvm"]));
        assert!(!a.has_tool(&["ntfs-3g"]));
        assert!(safe_vg_name("datavg") && !safe_vg_name("-rf") && !safe_vg_name("a b"));
    }
}
