//! The ordered list of restore steps. Each is idempotent: run twice, the second run
//! changes nothing; each names the state sections it needs, so a damaged section fails
//! only the steps that depend on it.

mod accounts;
mod cron;
mod data;
mod disks;
mod identity;
mod logins;
mod network;
mod reown;
mod services;
mod software;
mod sudoers;
mod system;
mod validate;
#[cfg(windows)]
mod windows;

use anyhow::{Result, bail};

use super::Loaded;
use super::apply::{Apply, Outcome};

/// One step of the plan.
pub struct StepDef {
    pub name: &'static str,
    /// What it does, for `--dry-run` and the report.
    pub about: &'static str,
    /// The sections of the state it reads.
    pub needs: &'static [&'static str],
    pub run: fn(&Apply, &Loaded) -> Result<Outcome>,
    /// Part of the post-restore health check (re-run as a dry run, must be unchanged).
    pub verify: bool,
}

/// The steps every target has.
const REPORT_TOKEN: StepDef = StepDef {
    name: "report-token",
    about: "put the orchestrator's token in place (unless the new OS has one) so the restore can report",
    needs: &["secrets"],
    run: system::report_token,
    verify: true,
};
const HOSTS: StepDef = StepDef {
    name: "hosts",
    about: "merge the hosts file entries",
    needs: &["hosts"],
    run: identity::hosts,
    verify: true,
};
const DATA: StepDef = StepDef {
    name: "data",
    about: "restore the data paths: contents, owners by name (on Linux), modes, times, xattrs, links",
    needs: &[],
    run: data::data,
    verify: false,
};

/// The plan of the system carryover runs on.
pub fn plan() -> &'static [StepDef] {
    #[cfg(windows)]
    return windows::STEPS;
    #[cfg(not(windows))]
    STEPS
}

/// The plan of a Linux target, in the order it runs.
pub const STEPS: &[StepDef] = &[
    StepDef {
        name: "cloud-init-guard",
        about: "tell cloud-init to keep the restored hostname, hosts and SSH host keys",
        needs: &[],
        run: identity::cloud_init_guard,
        verify: true,
    },
    REPORT_TOKEN,
    StepDef {
        name: "hostname",
        about: "set the hostname",
        needs: &["identity"],
        run: identity::hostname,
        verify: true,
    },
    HOSTS,
    StepDef {
        name: "dns",
        about: "set DNS servers and search domains through the new OS's resolver manager",
        needs: &["dns"],
        run: network::dns,
        verify: true,
    },
    StepDef {
        name: "accounts",
        about: "recreate local groups and users with the same names and ids",
        needs: &["users", "groups"],
        run: accounts::accounts,
        verify: true,
    },
    StepDef {
        name: "disks",
        about: "install lvm2/ntfs-3g when the data disks need them and activate their volume groups",
        needs: &["lvm", "mounts", "disks"],
        run: disks::volumes,
        verify: true,
    },
    StepDef {
        name: "fstab",
        about: "merge the data-disk mounts into fstab (by UUID, nofail), create their mountpoints, mount and check them",
        needs: &["mounts", "disks"],
        run: disks::fstab,
        verify: true,
    },
    StepDef {
        name: "reown",
        about: "re-own the files on the data disks of accounts whose id had to change (old id → new id)",
        needs: &["users", "groups", "mounts"],
        run: reown::reown,
        verify: true,
    },
    DATA,
    StepDef {
        name: "ssh-host-keys",
        about: "put back the SSH host keys",
        needs: &["ssh_host_keys", "secrets"],
        run: system::ssh_host_keys,
        verify: true,
    },
    StepDef {
        name: "authorized-keys",
        about: "put back root's and the users' SSH authorized_keys (root's merged with the Change OS key pair)",
        needs: &["logins", "users"],
        run: logins::authorized_keys,
        verify: true,
    },
    StepDef {
        name: "sshd",
        about: "carry the old OS's sshd settings the new OS lacks as a checked drop-in",
        needs: &["sshd"],
        run: logins::sshd,
        verify: true,
    },
    StepDef {
        name: "sudoers",
        about: "carry the sudo rules of the captured users and groups, checked with visudo",
        needs: &["sudoers", "users", "groups"],
        run: sudoers::sudoers,
        verify: true,
    },
    StepDef {
        name: "repositories",
        about: "re-add the third-party package repositories that exist for the new release (checked by fetching their index), with their keys and pins",
        needs: &["repos"],
        run: software::repositories,
        verify: true,
    },
    StepDef {
        name: "packages",
        about: "install the packages the user chose on the old OS through the new OS's manager, in one transaction, names mapped across families",
        needs: &["packages"],
        run: software::packages,
        verify: false,
    },
    StepDef {
        name: "config-files",
        about: "put back the configuration the user changed or added under /etc; the new OS's differing version is kept as <file>.carryover-new",
        needs: &["configs", "secrets"],
        run: software::config_files,
        verify: true,
    },
    StepDef {
        name: "unit-files",
        about: "install custom systemd unit files and drop-ins",
        needs: &["services"],
        run: services::unit_files,
        verify: true,
    },
    StepDef {
        name: "enable-units",
        about: "enable and mask units as on the old OS",
        needs: &["services"],
        run: services::enable_units,
        verify: true,
    },
    StepDef {
        name: "cron",
        about: "restore crontabs and cron.d jobs",
        needs: &["cron"],
        run: cron::cron,
        verify: true,
    },
    StepDef {
        name: "timezone",
        about: "set the timezone",
        needs: &["timezone"],
        run: system::timezone,
        verify: true,
    },
    StepDef {
        name: "ntp",
        about: "set the NTP servers through the new OS's time client",
        needs: &["ntp"],
        run: system::ntp,
        verify: true,
    },
    StepDef {
        name: "sysctl",
        about: "install sysctl drop-ins",
        needs: &["sysctl"],
        run: system::sysctl,
        verify: true,
    },
    StepDef {
        name: "activate",
        about: "on the live system: reload systemd, apply sysctl, mount, start enabled units",
        needs: &["services"],
        run: system::activate,
        verify: false,
    },
    StepDef {
        name: "readiness",
        about: "on the live system: wait until every service and port of the old OS is back ([restore] ready_timeout_seconds)",
        needs: &["baseline"],
        run: software::readiness,
        verify: false,
    },
];

/// Refuses a path from the snapshot unless it is absolute, has only plain components and
/// lies below one of `prefixes`: a hostile snapshot cannot aim a write elsewhere.
pub fn safe_path<'p>(path: &'p str, prefixes: &[&str]) -> Result<&'p str> {
    let plain = path.starts_with('/')
        && path[1..]
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.chars().any(char::is_control));
    if !plain
        || !prefixes
            .iter()
            .any(|pre| path.starts_with(pre) && path.len() > pre.len())
    {
        bail!(
            "refusing the path '{path}' from the snapshot: not below {}",
            prefixes.join(" or ")
        );
    }
    Ok(path)
}

/// Refuses a name from the snapshot that is not a single plain file name.
pub fn safe_name(name: &str) -> Result<&str> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        bail!("refusing the name '{name}' from the snapshot");
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_paths_are_refused() {
        let pre = &["/etc/systemd/system/"];
        assert!(safe_path("/etc/systemd/system/app.service", pre).is_ok());
        assert!(
            safe_path(
                "/etc/systemd/system/multi-user.target.wants/app.service",
                pre
            )
            .is_ok()
        );
        assert!(safe_path("/etc/systemd/system/../../shadow", pre).is_err());
        assert!(safe_path("/etc/systemd/system/./x", pre).is_err());
        assert!(safe_path("etc/systemd/system/x", pre).is_err());
        assert!(safe_path("/etc/systemd/systemx", pre).is_err());
        assert!(safe_path("/etc/systemd/system/", pre).is_err());
        assert!(safe_name("../x").is_err());
        assert!(safe_name("alice").is_ok());
    }

    #[test]
    fn step_names_are_unique() {
        let mut names: Vec<_> = STEPS.iter().map(|s| s.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), STEPS.len());
    }
}
