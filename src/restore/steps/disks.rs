//! Restore step for data disks: their fstab entries, merged by device into the new OS's
//! fstab with `nofail`, and their mountpoints.

use anyhow::Result;

use crate::restore::Loaded;
use crate::restore::apply::{Apply, Outcome};
use crate::state::mounts;

pub fn fstab(a: &Apply, l: &Loaded) -> Result<Outcome> {
    let data: Vec<&mounts::MountEntry> = l.state.mounts.iter().filter(|m| m.is_data()).collect();
    if data.is_empty() {
        return Ok(Outcome::skipped("no data-disk entries in the old fstab"));
    }
    let current = a.read("/etc/fstab").unwrap_or_default();
    let (merged, mut warnings) = mounts::merge_fstab(&current, &l.state.mounts);
    for m in &data {
        if !m.swap && super::safe_path(&m.mountpoint, &["/"]).is_err() {
            return Ok(Outcome::failed(format!(
                "refusing the mountpoint '{}'",
                m.mountpoint
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
    // into paths that may live on them.
    if a.root.is_live()
        && !a.dry_run
        && let Err(e) = crate::sys::run("mount", &["-a"])
    {
        return Ok(Outcome::failed(format!(
            "fstab written; mounting failed: {e}"
        )));
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
