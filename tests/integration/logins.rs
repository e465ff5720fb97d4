//! Logins across the change (#13.4–6): SSH authorized_keys back in the homes with their
//! owners and modes (root's merged with the Change OS key pair), the old sshd settings as
//! a drop-in, hostile lines refused, and never anything of the old user for a same-name
//! account of the new image.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use super::fixtures::*;

/// A real key pair made by ssh-keygen; returns the public line.
fn keygen(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    let o = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .output()
        .expect("ssh-keygen");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read_to_string(path.with_extension("pub"))
        .unwrap()
        .trim()
        .to_string()
}

/// The key of a public line (type and data).
fn key_of(line: &str) -> String {
    let w: Vec<&str> = line.split_whitespace().collect();
    let i = w.iter().position(|x| x.starts_with("ssh-")).unwrap();
    format!("{} {}", w[i], w[i + 1])
}

fn meta(t: &Tree, abs: &str) -> (u32, u32, u32) {
    let m = std::fs::symlink_metadata(t.p(abs)).unwrap_or_else(|e| panic!("{abs}: {e}"));
    (m.permissions().mode() & 0o7777, m.uid(), m.gid())
}

/// Debian 12's shipped sshd_config (the lines that are not comments, and a few that are).
const DEBIAN_SSHD_CONFIG: &str = "# This is the sshd server system-wide configuration file.  See\n# sshd_config(5) for more information.\n\nInclude /etc/ssh/sshd_config.d/*.conf\n\n#Port 22\n#AddressFamily any\n#ListenAddress 0.0.0.0\n\n#PermitRootLogin prohibit-password\n#MaxAuthTries 6\n\nKbdInteractiveAuthentication no\nUsePAM yes\nX11Forwarding yes\nPrintMotd no\nAcceptEnv LANG LC_*\nSubsystem\tsftp\t/usr/lib/openssh/sftp-server\n";

struct Keys {
    old_root: String,
    alice: String,
    ubuntu: String,
    debian: String,
    changeos: String,
}

/// The Ubuntu 22.04 server of the accounts tests with keys in the homes and an operator's
/// sshd settings; the Debian 12 image with cloud-init's key for root (the Change OS key
/// pair) and Debian's sshd_config. The homes are not captured as data (`[capture] homes =
/// false`): the keys come back by themselves.
fn servers(dir: &Path) -> (Tree, Tree, Keys) {
    let keys_dir = dir.join("keys");
    std::fs::create_dir_all(&keys_dir).unwrap();
    let k = Keys {
        old_root: keygen(&keys_dir, "old-root"),
        alice: keygen(&keys_dir, "alice"),
        ubuntu: keygen(&keys_dir, "ubuntu"),
        debian: keygen(&keys_dir, "old-debian"),
        changeos: keygen(&keys_dir, "changeos-keypair"),
    };
    let old = old_ubuntu(&dir.join("old"));
    old.file("/etc/carryover/config.toml", "[capture]\nhomes = false\n")
        .file_mode(
        "/root/.ssh/authorized_keys",
        &format!("{}\n", k.old_root),
        0o600,
    )
    .file_mode(
        "/home/alice/.ssh/authorized_keys",
        &format!(
            "# alice's laptop\nfrom=\"10.0.0.0/8\",no-agent-forwarding {}\nthis line is not a key\n",
            k.alice
        ),
        0o600,
    )
    .file_mode(
        "/home/ubuntu/.ssh/authorized_keys",
        &format!("{}\n", k.ubuntu),
        0o600,
    )
    .file_mode(
        "/home/debian/.ssh/authorized_keys",
        &format!("{}\n", k.debian),
        0o600,
    )
    .file(
        "/etc/ssh/sshd_config",
        &DEBIAN_SSHD_CONFIG.replace("#Port 22\n", "#Port 22\nPort 2222\n").replace(
            "#MaxAuthTries 6\n",
            "#MaxAuthTries 6\nMaxAuthTries 3\nPermitRootLogin prohibit-password\n",
        ),
    )
    .file(
        "/etc/ssh/sshd_config.d/60-cloudimg-settings.conf",
        "PasswordAuthentication no\n",
    )
    .file_mode(
        "/etc/sudoers.d/deploy",
        "alice ALL=(ALL) /usr/bin/apt\ndebian ALL=(ALL) NOPASSWD: /usr/bin/apt\n",
        0o440,
    )
    .file(
        "/etc/ssh/sshd_config.d/10-ops.conf",
        "AllowUsers alice ubuntu root\nMatch User deploy\n    PasswordAuthentication yes\n",
    );
    let new = new_debian(&dir.join("new"));
    new.file_mode(
        "/root/.ssh/authorized_keys",
        &format!("{}\n", k.changeos),
        0o600,
    )
    .file("/etc/ssh/sshd_config", DEBIAN_SSHD_CONFIG);
    // a loose mode on root's .ssh: the restore sets 0700 (sshd's StrictModes wants it)
    std::fs::set_permissions(new.p("/root/.ssh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    (old, new, k)
}

#[test]
fn authorized_keys_come_back_with_owners_and_modes_and_roots_are_merged() {
    let t = tempfile::tempdir().unwrap();
    let (old, new, k) = servers(t.path());
    let v = json_ok(&Cmd::new("inspect").root(&old.dir).json().run());
    let logins = v["logins"]["authorized_keys"].to_string();
    assert!(
        logins.contains("\"user\":\"root\"") && logins.contains("\"ignored\":1"),
        "{logins}"
    );
    let store = t.path().join("store");
    capture(&old.dir, &store);

    // the plan says what would change and writes nothing
    let planned = json(&restore(&new.dir, &store, &["--dry-run"], &[]));
    let keys = step(&planned, "authorized-keys");
    assert_eq!(keys["status"], "would-change", "{keys}");
    assert!(!new.p("/home/alice").exists());
    assert_eq!(meta(&new, "/root/.ssh").0, 0o755, "a dry run sets no mode");
    assert_eq!(
        new.read("/root/.ssh/authorized_keys"),
        format!("{}\n", k.changeos)
    );

    let o = restore(&new.dir, &store, &[], &[]);
    let v = json(&o);
    let passwd = new.read("/etc/passwd");
    let (alice, ubuntu) = (uid_in(&passwd, "alice"), uid_in(&passwd, "ubuntu"));

    // root: the Change OS key pair stays, first; the old key is added
    let root = new.read("/root/.ssh/authorized_keys");
    assert!(root.starts_with(&format!("{}\n", k.changeos)), "{root}");
    assert!(root.contains(&k.old_root), "{root}");
    assert_eq!(meta(&new, "/root/.ssh"), (0o700, 0, 0));
    assert_eq!(meta(&new, "/root/.ssh/authorized_keys"), (0o600, 0, 0));
    // alice: her key with its options, in her new home, hers, 0700/0600
    let file = new.read("/home/alice/.ssh/authorized_keys");
    assert!(
        file.contains(&format!(
            "from=\"10.0.0.0/8\",no-agent-forwarding {}",
            k.alice
        )),
        "{file}"
    );
    assert!(!file.contains("not a key"), "{file}");
    assert_eq!(meta(&new, "/home/alice/.ssh"), (0o700, alice, alice));
    assert_eq!(
        meta(&new, "/home/alice/.ssh/authorized_keys"),
        (0o600, alice, alice)
    );
    // ubuntu moved to another uid: its keys are its own under the new uid
    assert_eq!(
        meta(&new, "/home/ubuntu/.ssh/authorized_keys"),
        (0o600, ubuntu, ubuntu)
    );
    assert!(
        new.read("/home/ubuntu/.ssh/authorized_keys")
            .contains(&key_of(&k.ubuntu))
    );
    // the image's debian (uid 1000) never gets the old debian's (1003) keys
    let debian_keys = new.p("/home/debian/.ssh/authorized_keys");
    assert!(
        !std::fs::read_to_string(&debian_keys)
            .unwrap_or_default()
            .contains(&key_of(&k.debian))
    );
    let keys = step(&v, "authorized-keys");
    assert_eq!(keys["status"], "changed", "{keys}");
    assert!(
        keys["warnings"].to_string().contains("user debian"),
        "{keys}"
    );
    // no key in the report: counts only
    let blob = key_of(&k.alice);
    let tail = &blob[blob.len() - 24..];
    assert!(!stdout(&o).contains(tail) && !stderr(&o).contains(tail));

    // sshd: what the old OS set and Debian does not, as a drop-in read first
    let dropin = new.read("/etc/ssh/sshd_config.d/00-carryover.conf");
    for line in [
        "PasswordAuthentication no",
        "AllowUsers alice ubuntu root",
        "Port 2222",
        "MaxAuthTries 3",
        "PermitRootLogin prohibit-password",
    ] {
        assert!(dropin.lines().any(|l| l == line), "{line}: {dropin}");
    }
    assert!(
        !dropin.contains("X11Forwarding") && !dropin.contains("KbdInteractive"),
        "{dropin}"
    );
    assert_eq!(
        meta(&new, "/etc/ssh/sshd_config.d/00-carryover.conf"),
        (0o644, 0, 0)
    );
    assert_eq!(
        new.read("/etc/ssh/sshd_config"),
        DEBIAN_SSHD_CONFIG,
        "already includes it"
    );
    let sshd = step(&v, "sshd");
    assert_eq!(sshd["status"], "changed", "{sshd}");
    assert!(
        sshd["warnings"].to_string().contains("Match User deploy"),
        "{sshd}"
    );

    // sudo: alice's rule comes, the old debian's never goes to the image's debian
    let deploy = new.read("/etc/sudoers.d/deploy");
    assert!(
        deploy.contains("alice ALL=(ALL) /usr/bin/apt\n"),
        "{deploy}"
    );
    assert!(!deploy.contains("debian"), "{deploy}");
    assert_eq!(meta(&new, "/etc/sudoers.d/deploy"), (0o440, 0, 0));
    let sudo = step(&v, "sudoers");
    assert!(
        sudo["warnings"]
            .to_string()
            .contains("debian ALL=(ALL) NOPASSWD: /usr/bin/apt' not carried"),
        "{sudo}"
    );
    assert!(sudo["attention"].is_null(), "{sudo}");

    // a second restore changes nothing
    let again = json(&restore(&new.dir, &store, &[], &[]));
    for name in ["authorized-keys", "sshd", "sudoers"] {
        assert_eq!(
            step(&again, name)["status"],
            "unchanged",
            "{}",
            step(&again, name)
        );
    }
    assert_eq!(new.read("/root/.ssh/authorized_keys"), root);
}

/// A new OS whose sshd_config reads no drop-ins gets an Include of carryover's at its top.
#[test]
fn an_sshd_config_without_includes_gets_one_on_top() {
    let t = tempfile::tempdir().unwrap();
    let (old, new, _) = servers(t.path());
    let plain = "Port 22\nPermitRootLogin yes\nUsePAM yes\n";
    new.file("/etc/ssh/sshd_config", plain);
    let store = t.path().join("store");
    capture(&old.dir, &store);
    let v = json(&restore(&new.dir, &store, &[], &[]));
    let main = new.read("/etc/ssh/sshd_config");
    assert!(
        main.starts_with("# BEGIN carryover")
            && main.contains(
                "Include /etc/ssh/sshd_config.d/00-carryover.conf\n# END carryover\nPort 22\n"
            ),
        "{main}"
    );
    let sshd = step(&v, "sshd");
    // the new file's Port 22 stays: sshd listens on both, and says so
    assert!(
        sshd["warnings"]
            .to_string()
            .contains("Port: the new OS sets 22 too"),
        "{sshd}"
    );
    assert!(
        new.read("/etc/ssh/sshd_config.d/00-carryover.conf")
            .contains("PermitRootLogin prohibit-password")
    );
}

#[test]
fn hostile_key_lines_settings_and_links_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let (old, new, k) = servers(t.path());
    let store = t.path().join("store");
    let id = capture(&old.dir, &store);
    tamper(
        &store,
        &id,
        |v| {
            for e in v["logins"]["authorized_keys"].as_array_mut().unwrap() {
                if e["user"] == "root" {
                    e["keys"]
                        .as_array_mut()
                        .unwrap()
                        .push("ssh-ed25519 AAAA\nPermitRootLogin yes".into());
                    e["keys"].as_array_mut().unwrap().push(
                        "evil=\"1\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIELFsTTm6AGMDspKDm0h2i3V9DvYKztJcBi8EG7O2iTP"
                            .into(),
                    );
                }
            }
            v["logins"]["authorized_keys"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({"user": "../../etc", "keys": [ED25519_PUB]}));
            let settings = v["sshd"]["settings"].as_array_mut().unwrap();
            settings
                .push(serde_json::json!({"key": "ForceCommand", "value": "/bin/sh", "file": "x"}));
            settings.push(
                serde_json::json!({"key": "AllowGroups", "value": "ops\nMatch all", "file": "x"}),
            );
        },
        true,
    );
    // alice's home is already there (a data disk), with .ssh planted as a link to root's
    new.dir("/home/alice");
    std::os::unix::fs::chown(new.p("/home/alice"), Some(1001), Some(1001)).unwrap();
    new.link("/home/alice/.ssh", "/root/.ssh");

    let o = restore(&new.dir, &store, &[], &[]);
    assert_exit!(o, Some(4));
    let v = json(&o);
    let keys = step(&v, "authorized-keys");
    let attention = keys["attention"].to_string();
    assert!(
        attention.contains("user root: 2 captured authorized_keys lines"),
        "{keys}"
    );
    assert!(
        attention.contains("refusing the authorized_keys of '../../etc'"),
        "{keys}"
    );
    assert!(
        attention.contains("user alice") && attention.contains("/home/alice/.ssh"),
        "{keys}"
    );
    let root = new.read("/root/.ssh/authorized_keys");
    assert!(
        root.contains(&key_of(&k.old_root)),
        "the valid key still comes back: {root}"
    );
    assert!(
        !root.contains("PermitRootLogin") && !root.contains("evil"),
        "{root}"
    );
    assert!(
        !root.contains(&key_of(&k.alice)),
        "alice's keys never go through the link: {root}"
    );
    assert!(!new.p("/etc/.ssh").exists());
    let sshd = step(&v, "sshd");
    assert!(
        sshd["attention"].to_string().contains("ForceCommand"),
        "{sshd}"
    );
    let dropin = new.read("/etc/ssh/sshd_config.d/00-carryover.conf");
    assert!(
        !dropin.contains("ForceCommand") && !dropin.contains("Match"),
        "{dropin}"
    );
    assert_eq!(v["state"], "degraded");
}

/// `visudo -c -f FILE` on this machine, when it has visudo: the written file is valid.
fn visudo_accepts(path: &Path) -> Option<bool> {
    Path::new("/usr/sbin/visudo").is_file().then(|| {
        Command::new("/usr/sbin/visudo")
            .args(["-c", "-q", "-f"])
            .arg(path)
            .status()
            .unwrap()
            .success()
    })
}

/// #13.5: Rocky 9 → Ubuntu 24.04: `wheel` is `sudo` there; the old /etc/sudoers lines for
/// alice (with the command alias they use) and the sudoers.d files come as 0440 files;
/// cloud-init's file of the new image keeps its own rule.
#[test]
fn sudo_rights_carry_over_from_rocky_to_ubuntu_with_wheel_as_sudo() {
    let t = tempfile::tempdir().unwrap();
    let old = old_rocky(&t.path().join("old"));
    let v = json_ok(&Cmd::new("inspect").root(&old.dir).json().run());
    assert_eq!(
        v["sudoers"]["files"].as_array().unwrap().len(),
        2,
        "{}",
        v["sudoers"]
    );
    let store = t.path().join("store");
    capture(&old.dir, &store);
    let new = new_ubuntu24(&t.path().join("new"));
    let o = restore(&new.dir, &store, &[], &[]);
    let v = json(&o);
    let group = new.read("/etc/group");
    assert!(group.contains("sudo:x:27:ubuntu,rocky,alice\n"), "{group}");
    assert!(!group.contains("wheel"), "{group}");
    assert!(
        step(&v, "accounts")["warnings"]
            .to_string()
            .contains("the admin group wheel is sudo"),
        "{}",
        step(&v, "accounts")
    );
    let main = new.read("/etc/sudoers.d/00-carryover");
    assert!(
        main.contains("Cmnd_Alias SERVICES = /usr/bin/systemctl,"),
        "{main}"
    );
    assert!(
        main.contains("alice\tALL=(ALL)\tNOPASSWD: SERVICES\n"),
        "{main}"
    );
    assert!(
        !main.contains("NETWORK") && !main.contains("%wheel") && !main.contains("root"),
        "{main}"
    );
    let ops = new.read("/etc/sudoers.d/ops");
    assert!(
        ops.contains("%ops ALL=(root) /usr/bin/journalctl\nDefaults:alice !requiretty\n"),
        "{ops}"
    );
    let cloud = new.read("/etc/sudoers.d/90-cloud-init-users");
    assert!(
        cloud.contains("\nubuntu ALL=(ALL) NOPASSWD:ALL\n# BEGIN carryover"),
        "{cloud}"
    );
    assert!(
        cloud.contains("rocky ALL=(ALL) NOPASSWD:ALL\n# END carryover\n"),
        "{cloud}"
    );
    for f in ["00-carryover", "ops", "90-cloud-init-users"] {
        let path = format!("/etc/sudoers.d/{f}");
        assert_eq!(meta(&new, &path), (0o440, 0, 0), "{path}");
        assert_ne!(visudo_accepts(&new.p(&path)), Some(false), "{path}");
    }
    let sudo = step(&v, "sudoers");
    assert_eq!(sudo["status"], "changed", "{sudo}");
    if visudo_accepts(&new.p("/etc/sudoers")).is_some() {
        assert!(
            !sudo["warnings"].to_string().contains("not checked"),
            "{sudo}"
        );
    }
    assert_exit!(o, Some(0));
    let again = json(&restore(&new.dir, &store, &[], &[]));
    assert_eq!(step(&again, "sudoers")["status"], "unchanged");
    assert_eq!(new.read("/etc/sudoers.d/90-cloud-init-users"), cloud);
}

#[test]
fn hostile_sudoers_lines_and_names_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let old = old_rocky(&t.path().join("old"));
    let store = t.path().join("store");
    let id = capture(&old.dir, &store);
    tamper(
        &store,
        &id,
        |v| {
            let files = v["sudoers"]["files"].as_array_mut().unwrap();
            files.push(
                serde_json::json!({"name": "../../etc/passwd", "content": "alice ALL=(ALL) ALL\n"}),
            );
            files.push(serde_json::json!({"name": "evil", "content": "ALL ALL=(ALL) NOPASSWD: ALL\nDefaults !authenticate\n#include /etc/shadow\n%wheel ALL=(ALL) NOPASSWD: ALL\n#1000 ALL=(ALL) ALL\nbob ALL=(ALL) ALL\n"}));
            files.push(
                serde_json::json!({"name": "broken", "content": "alice ALL=(ALL NOPASSWD: ALL\n"}),
            );
        },
        true,
    );
    let new = new_ubuntu24(&t.path().join("new"));
    let passwd = new.read("/etc/passwd");
    let o = restore(&new.dir, &store, &[], &[]);
    assert_exit!(o, Some(4));
    let v = json(&o);
    let sudo = step(&v, "sudoers");
    let attention = sudo["attention"].to_string();
    for refused in [
        "refusing the sudoers file name '../../etc/passwd'",
        "'ALL ALL=(ALL) NOPASSWD: ALL' refused",
        "'Defaults !authenticate' refused",
        "'#include /etc/shadow' refused",
        "'%wheel ALL=(ALL) NOPASSWD: ALL' refused",
        "'#1000 ALL=(ALL) ALL' refused",
        "'bob ALL=(ALL) ALL' refused",
    ] {
        assert!(attention.contains(refused), "{refused}: {sudo}");
    }
    assert!(
        !new.p("/etc/sudoers.d/evil").exists(),
        "nothing of it was acceptable"
    );
    assert!(new.read("/etc/passwd").starts_with(&passwd));
    assert!(!new.read("/etc/passwd").contains("ALL"));
    // visudo refuses the broken one: not written (without visudo it is named unchecked)
    if visudo_accepts(&new.p("/etc/sudoers")).is_some() {
        assert!(!new.p("/etc/sudoers.d/broken").exists());
        assert_eq!(sudo["status"], "failed", "{sudo}");
        assert!(
            sudo["failed_files"]
                .to_string()
                .contains("/etc/sudoers.d/broken: visudo refused it"),
            "{sudo}"
        );
    } else {
        assert!(
            sudo["warnings"].to_string().contains("not checked"),
            "{sudo}"
        );
    }
    // the good rules still came
    assert!(new.read("/etc/sudoers.d/ops").contains("%ops"));
}

/// #13.6: the homes on the system disk are named with their sizes by `check`, captured by
/// default (caches left out) and restored with their owners by name; the old `debian`'s
/// home never goes into the image's `debian`'s.
#[test]
fn homes_on_the_system_disk_are_captured_by_default_and_restored_with_owners() {
    let t = tempfile::tempdir().unwrap();
    let (old, new, k) = servers(t.path());
    std::fs::remove_file(old.p("/etc/carryover/config.toml")).unwrap();
    old.file_mode("/home/alice/project/main.rs", "fn main() {}\n", 0o640)
        .file("/home/alice/.cache/pip/wheel.whl", &"x".repeat(100_000))
        .file("/home/ubuntu/notes.txt", "ubuntu's notes\n")
        .file("/home/debian/secret.txt", "the old debian's\n");
    for (user, id) in [("alice", 1001), ("ubuntu", 1000), ("debian", 1003)] {
        for e in walkdir::WalkDir::new(old.p(&format!("/home/{user}"))) {
            let e = e.unwrap();
            std::os::unix::fs::lchown(e.path(), Some(id), Some(id)).unwrap();
        }
    }
    std::fs::set_permissions(old.p("/home/alice"), std::fs::Permissions::from_mode(0o750)).unwrap();

    let v = json(&Cmd::new("check").root(&old.dir).json().run());
    let homes: Vec<&serde_json::Value> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["key"] == "home-on-system-disk")
        .collect();
    assert_eq!(
        homes.len(),
        3,
        "alice, ubuntu, debian (deploy has none): {v}"
    );
    let alice = homes
        .iter()
        .find(|f| f["message"].to_string().contains("/home/alice"))
        .unwrap();
    assert_eq!(alice["severity"], "warning");
    // main.rs and authorized_keys, not the 100 kB cache
    assert!(
        alice["message"].as_str().unwrap().contains(" B in 2 files"),
        "{alice}"
    );
    assert!(
        alice["message"]
            .as_str()
            .unwrap()
            .contains("captured as data"),
        "{alice}"
    );

    let store = t.path().join("store");
    capture(&old.dir, &store);
    let o = restore(&new.dir, &store, &[], &[]);
    let v = json(&o);
    let passwd = new.read("/etc/passwd");
    let (alice, ubuntu) = (uid_in(&passwd, "alice"), uid_in(&passwd, "ubuntu"));
    assert_eq!(new.read("/home/alice/project/main.rs"), "fn main() {}\n");
    assert_eq!(
        meta(&new, "/home/alice/project/main.rs"),
        (0o640, alice, alice)
    );
    assert_eq!(meta(&new, "/home/alice"), (0o750, alice, alice));
    assert!(!new.p("/home/alice/.cache").exists(), "caches are left out");
    assert_eq!(meta(&new, "/home/ubuntu/notes.txt").1, ubuntu);
    assert!(
        new.read("/home/alice/.ssh/authorized_keys")
            .contains(&key_of(&k.alice))
    );
    // the image's debian: its own home as it was, nothing of the old debian's
    assert!(!new.p("/home/debian/secret.txt").exists());
    assert!(!new.p("/home/debian/.ssh/authorized_keys").exists());
    assert_eq!(new.read("/home/debian/.bashrc"), "# the image user's\n");
    let data = step(&v, "data");
    assert!(
        data["attention"]
            .to_string()
            .contains("the old debian's home /home/debian was not restored"),
        "{data}"
    );
    assert_eq!(step(&v, "authorized-keys")["status"], "changed");
}

/// More than 1 GiB of homes are not captured unless `[capture] homes = true`; `check`
/// says so with the size.
#[test]
fn large_homes_are_named_and_captured_only_when_asked() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    old.dir("/home/alice");
    let f = std::fs::File::create(old.p("/home/alice/disk.img")).unwrap();
    f.set_len(2 << 30).unwrap(); // sparse: 2 GiB long, nothing allocated
    let finding = |o: &std::process::Output| {
        let v = json(o);
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["key"] == "home-on-system-disk")
            .cloned()
            .unwrap_or_else(|| panic!("{v}"))
    };
    let f = finding(&Cmd::new("check").root(&old.dir).json().run());
    let msg = f["message"].as_str().unwrap();
    assert!(
        msg.contains("/home/alice") && msg.contains("2.00 GiB in 1 file)"),
        "{f}"
    );
    assert!(msg.contains("NOT captured"), "{f}");
    let v = json_ok(&Cmd::new("inspect").root(&old.dir).json().run());
    assert_eq!(v["homes"][0]["captured"], false, "{}", v["homes"]);
    old.file("/etc/carryover/config.toml", "[capture]\nhomes = true\n");
    let f = finding(&Cmd::new("check").root(&old.dir).json().run());
    assert!(
        f["message"].as_str().unwrap().contains("captured as data"),
        "{f}"
    );
}
