//! The Change OS user-data: for a store on a real (loop-mounted) data disk it finds the
//! filesystem by the UUID blkid sees, installs the agent capture kept in the store, runs
//! restore; it is valid YAML under 32 KB and carries no secret.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::fixtures::*;

struct Unmount(PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A filesystem image made by `mkfs` and mounted by `mount` (`{img} {mnt}` appended),
/// unmounted when the guard drops.
fn mounted_disk(
    dir: &Path,
    name: &str,
    size: &str,
    mkfs: &str,
    mount: &str,
) -> (PathBuf, PathBuf, Unmount) {
    let img = dir.join(format!("{name}.img"));
    let mnt = dir.join(name);
    std::fs::create_dir(&mnt).unwrap();
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "truncate -s {size} {0} && {mkfs} {0} >/dev/null 2>&1 && {mount} {0} {1}",
            img.display(),
            mnt.display()
        ))
        .status()
        .unwrap();
    assert!(st.success(), "{mkfs} / {mount}");
    let guard = Unmount(mnt.clone());
    (img, mnt, guard)
}

/// The filesystem UUID blkid reads from an image.
fn blkid_uuid(img: &Path) -> String {
    let out = Command::new("blkid")
        .args(["-p", "-s", "UUID", "-o", "value"])
        .arg(img)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn user_data_mounts_the_store_disk_by_uuid_and_runs_restore() {
    let t = tempfile::tempdir().unwrap();
    let (img, mnt, _u) = mounted_disk(t.path(), "data", "1G", "mkfs.ext4 -q -F", "mount -o loop");
    let old = old_debian(&t.path().join("old"));
    let store = mnt.join("fleet/carryover");
    let id = capture(&old.dir, &store);
    let kept = std::fs::read(store.join(own_agent_key())).unwrap();
    assert_eq!(
        kept,
        std::fs::read(agent_bin()).unwrap(),
        "capture keeps the agent in the store"
    );

    let o = carryover_env(
        &["userdata", "--store", store.to_str().unwrap()],
        &[("AWS_SECRET_ACCESS_KEY", "PLANTED-SECRET")],
    );
    assert_exit!(o, Some(0));
    let text = stdout(&o);
    assert!(text.starts_with("#cloud-config\n") && text.len() < 32 * 1024);
    assert!(!text.contains("PLANTED-SECRET"));
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).unwrap();
    let script = docs[0]["runcmd"][0][2].as_str().unwrap().to_string();
    let uuid = blkid_uuid(&img);
    assert!(
        script.contains(&format!("mount UUID={uuid} /run/carryover-store")),
        "{script}"
    );
    assert!(
        script.contains(&format!(
            "cp '/run/carryover-store/fleet/carryover/{}' /usr/local/lib/carryover/agent.new",
            own_agent_key()
        )),
        "{script}"
    );
    // the agent is pinned: the user-data names its SHA-256
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&kept))
    };
    assert!(
        script.contains(&format!(
            "echo '{sha}  /usr/local/lib/carryover/agent.new' | sha256sum -c"
        )),
        "{script}"
    );
    assert!(
        script.contains("[store]\nurl = \"/run/carryover-store/fleet/carryover\"\n"),
        "{script}"
    );
    assert!(script.contains("systemctl start --no-block carryover-restore.service"));
    // `not_before` names the newest snapshot of the instance the user-data is made on
    // (this test machine's, not the tree's: none in this store)
    assert!(script.contains("[restore]\nexpected = true\n"), "{script}");
    assert!(!script.contains(&id), "{script}");
}

#[test]
fn a_store_on_the_system_disk_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let df = String::from_utf8(
        Command::new("findmnt")
            .args(["-n", "-o", "TARGET", "-T"])
            .arg(t.path())
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    if df.trim() != "/" {
        // this machine keeps temporary files on another filesystem: nothing to check here
        return;
    }
    let o = carryover(&["userdata", "--store", t.path().to_str().unwrap()]);
    assert_exit!(o, Some(1));
    assert!(stderr(&o).contains("root filesystem"), "{}", stderr(&o));
}

#[test]
fn windows_user_data_finds_an_ntfs_store_by_serial_and_refuses_ext4() {
    let t = tempfile::tempdir().unwrap();
    // room for the agent the capture keeps (a debug build is large)
    let (img, mnt, _u) = mounted_disk(t.path(), "ntfs", "512M", "mkntfs -q -F -f", "ntfs-3g");
    let store = mnt.join("fleet/carryover");
    let old = old_debian(&t.path().join("old"));
    capture(&old.dir, &store);
    let exe = t.path().join("carryover.exe");
    std::fs::write(&exe, pe_stand_in("the Windows agent")).unwrap();

    // no Windows agent in the store yet: said so, with the way out
    let o = carryover(&[
        "userdata",
        "--os",
        "windows",
        "--store",
        store.to_str().unwrap(),
    ]);
    assert_exit!(o, Some(1));
    assert!(stderr(&o).contains("--agent"), "{}", stderr(&o));

    let o = carryover_env(
        &[
            "userdata",
            "--os",
            "windows",
            "--agent",
            exe.to_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
        ],
        &[("AWS_SECRET_ACCESS_KEY", "PLANTED-SECRET")],
    );
    assert_exit!(o, Some(0));
    let ps = stdout(&o);
    println!("{ps}");
    assert!(ps.starts_with("#ps1_sysnative\n") && ps.len() < 32 * 1024);
    assert!(!ps.contains("PLANTED-SECRET"));
    assert_eq!(
        std::fs::read(store.join("agent/carryover.exe")).unwrap(),
        pe_stand_in("the Windows agent"),
        "--agent puts the Windows agent into the store"
    );
    let uuid = blkid_uuid(&img);
    let serial = &uuid[uuid.len() - 8..];
    assert!(ps.contains(&format!("-eq '{serial}'")), "{serial}: {ps}");
    assert!(
        ps.contains("$store = Join-Path $store 'fleet\\carryover'"),
        "{ps}"
    );
    assert!(ps.contains("& $exe service install"));

    // an ext4 store cannot be read by Windows: refused, with the reason
    let (_, emnt, _e) = mounted_disk(t.path(), "ext", "64M", "mkfs.ext4 -q -F", "mount -o loop");
    let o = carryover(&[
        "userdata",
        "--os",
        "windows",
        "--agent",
        exe.to_str().unwrap(),
        "--store",
        emnt.to_str().unwrap(),
    ]);
    assert_exit!(o, Some(1));
    assert!(stderr(&o).contains("Windows cannot read"), "{}", stderr(&o));
}

/// An HTTP server on loopback that answers 200 to everything and keeps each request's
/// first line and body.
/// Each request's first line and body.
type Requests = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

fn http_sink() -> (u16, Requests) {
    use std::io::{BufRead, BufReader, Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    std::thread::spawn(move || {
        for stream in l.incoming().flatten() {
            let mut r = BufReader::new(stream.try_clone().unwrap());
            let (mut first, mut len) = (String::new(), 0usize);
            r.read_line(&mut first).unwrap_or(0);
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; len];
            let _ = r.read_exact(&mut body);
            let mut s = stream;
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            s2.lock().unwrap().push((
                first.trim().to_string(),
                String::from_utf8_lossy(&body).into(),
            ));
        }
    });
    (port, seen)
}

/// #12.5: the store's data disk is broken on the new OS, so the user-data's runcmd stops
/// before the agent exists — and still tells the orchestrator, naming the step.
#[test]
fn user_data_reports_a_store_disk_that_does_not_mount() {
    let t = tempfile::tempdir().unwrap();
    let (img, mnt, u) = mounted_disk(t.path(), "data", "1G", "mkfs.ext4 -q -F", "mount -o loop");
    let old = old_debian(&t.path().join("old"));
    let store = mnt.join("carryover");
    capture(&old.dir, &store);
    let (port, seen) = http_sink();
    let config = t.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[report]\nurl = \"http://127.0.0.1:{port}/api\"\n"),
    )
    .unwrap();
    let o = Cmd::new("userdata")
        .arg("--config")
        .arg(&config)
        .store(&store)
        .run();
    assert_exit!(o, Some(0));
    let docs = yaml_rust2::YamlLoader::load_from_str(&stdout(&o)).unwrap();
    let script = docs[0]["runcmd"][0][2].as_str().unwrap().to_string();
    assert!(script.contains("[restore]\nexpected = true\n"), "{script}");

    // the Change OS came, but the store's disk is broken: no filesystem with that UUID
    drop(u);
    let st = Command::new("wipefs")
        .args(["-a", "-q"])
        .arg(&img)
        .status()
        .unwrap();
    assert!(st.success());
    // the runcmd as cloud-init runs it, in a mount namespace with its own /run and
    // /usr/local/lib so this machine is not touched
    let o = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(
            "mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /usr/local/lib && exec sh -c \"$0\"",
        )
        .arg(&script)
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0), "the runcmd fails: {}", stderr(&o));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "one event: {seen:?}");
    let (line, body) = &seen[0];
    assert!(line.starts_with("POST /api/v1/instances/"), "{line}");
    let ev: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        (ev["phase"].as_str(), ev["state"].as_str()),
        (Some("restore"), Some("failed"))
    );
    let message = ev["message"].as_str().unwrap();
    assert!(message.contains("mounting the store disk"), "{message}");
    assert!(line.contains(ev["instance_id"].as_str().unwrap()));
    assert_eq!(ev["event_id"].as_str().unwrap().len(), 36);
}

/// #16.1: the user-data pins the agent by its SHA-256: an agent swapped in the store after
/// the user-data was made is never installed (nor run as root).
#[test]
fn a_swapped_agent_in_the_store_is_not_installed() {
    let t = tempfile::tempdir().unwrap();
    let (_img, mnt, _u) = mounted_disk(t.path(), "data", "1G", "mkfs.ext4 -q -F", "mount -o loop");
    let old = old_debian(&t.path().join("old"));
    let store = mnt.join("carryover");
    capture(&old.dir, &store);
    let o = Cmd::new("userdata").store(&store).run();
    assert_exit!(o, Some(0));
    let docs = yaml_rust2::YamlLoader::load_from_str(&stdout(&o)).unwrap();
    let script = docs[0]["runcmd"][0][2].as_str().unwrap().to_string();
    // someone with write access to the data disk replaces the agent
    std::fs::write(
        store.join(own_agent_key()),
        "#!/bin/sh\necho pwned > /tmp/pwned\n",
    )
    .unwrap();
    // the runcmd, in a mount namespace with its own /run and /usr/local
    let o = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(concat!(
            "mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /usr/local && ",
            "sh -c \"$0\"; rc=$?; [ -e /usr/local/bin/carryover ] && echo INSTALLED; exit $rc"
        ))
        .arg(&script)
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stdout(&o).contains("INSTALLED"), "{}", stdout(&o));
    assert!(stderr(&o).contains("SHA-256 mismatch"), "{}", stderr(&o));
}

/// #16.6: values that would break out of the cloud-config (a CR in the store's path, a
/// Unicode line separator in the report URL) are refused; quotes and YAML syntax in them
/// stay inside the script, as PyYAML (cloud-init's parser) reads it.
#[test]
fn user_data_values_cannot_inject_cloud_config_keys() {
    let t = tempfile::tempdir().unwrap();
    let (_img, mnt, _u) = mounted_disk(t.path(), "data", "1G", "mkfs.ext4 -q -F", "mount -o loop");
    let old = old_debian(&t.path().join("old"));
    for (dir, url, refused) in [
        ("car\rryover", "http://127.0.0.1:1/api", true),
        (
            "carryover",
            "http://127.0.0.1:1/api\u{2028}bootcmd: [reboot]",
            true,
        ),
        ("it's: #- {x}\"", "http://127.0.0.1:1/a'pi: \"#", false),
    ] {
        let store = mnt.join(dir);
        capture(&old.dir, &store);
        let config = t.path().join("config.toml");
        std::fs::write(&config, format!("[report]\nurl = {}\n", toml_quote(url))).unwrap();
        let o = Cmd::new("userdata")
            .arg("--config")
            .arg(&config)
            .store(&store)
            .run();
        if refused {
            assert_exit!(o, Some(1));
            assert!(
                stderr(&o).contains("would break the user-data"),
                "{}",
                stderr(&o)
            );
            assert!(stdout(&o).is_empty());
            continue;
        }
        assert_exit!(o, Some(0));
        let py = Command::new("python3")
            .args([
                "-c",
                "import sys, yaml; d = yaml.safe_load(sys.stdin); print(sorted(d)); print(d['runcmd'][0][2])",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        py.stdin.as_ref().unwrap().write_all(&o.stdout).unwrap();
        let out = py.wait_with_output().unwrap();
        assert!(out.status.success(), "PyYAML could not read it");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("['runcmd']\n"), "{text}");
        let script = &text["['runcmd']\n".len()..];
        let st = Command::new("sh")
            .args(["-n", "-c", script])
            .status()
            .unwrap();
        assert!(st.success(), "sh -n: {script}");
    }
}

fn toml_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{2028}' => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The lines of a cloud-config's runcmd that copy the agent and check its SHA-256.
fn agent_line(text: &str) -> String {
    let docs = yaml_rust2::YamlLoader::load_from_str(text).unwrap();
    let script = docs[0]["runcmd"][0][2].as_str().unwrap().to_string();
    script
        .lines()
        .filter(|l| l.starts_with("cp ") || l.contains("sha256sum -c"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// An old Debian tree (`old`) and a store on a fresh loop-mounted ext4 data disk under
/// `dir`, unmounted when the guard drops.
fn old_os_and_data_disk_store(dir: &Path) -> (Tree, PathBuf, Unmount) {
    let (_img, mnt, guard) = mounted_disk(dir, "data", "1G", "mkfs.ext4 -q -F", "mount -o loop");
    (old_debian(&dir.join("old")), mnt.join("carryover"), guard)
}

/// `capture --agent FILE` of `old` into `store`.
fn capture_with_agent(old: &Tree, store: &Path, agent: &Path) -> std::process::Output {
    Cmd::new("capture")
        .root(&old.dir)
        .store(store)
        .arg("--agent")
        .arg(agent)
        .run()
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// #15.4: `capture --agent` keeps other platforms' agents under their own keys (read from
/// each file's header); `userdata --arch` picks the one the new OS runs, pinned by its hash.
#[test]
fn capture_keeps_other_architectures_agents_and_userdata_picks_by_arch() {
    let t = tempfile::tempdir().unwrap();
    let (old, store, _u) = old_os_and_data_disk_store(t.path());
    let other = other_arch();
    let other_bin = t.path().join("other-agent");
    std::fs::write(&other_bin, elf_stand_in(other, "the other build")).unwrap();
    let exe = t.path().join("carryover.exe");
    std::fs::write(&exe, pe_stand_in("the Windows build")).unwrap();

    // a file that is no agent is a usage error, before anything is stored
    let script = t.path().join("not-an-agent");
    std::fs::write(&script, "#!/bin/sh\necho hello\n").unwrap();
    let o = capture_with_agent(&old, &store, &script);
    assert_exit!(o, Some(2));
    assert!(stderr(&o).contains("not-an-agent"), "{}", stderr(&o));
    assert!(!store.join("snapshots").exists());

    let o = Cmd::new("capture")
        .root(&old.dir)
        .store(&store)
        .arg("--agent")
        .arg(&other_bin)
        .arg("--agent")
        .arg(&exe)
        .json()
        .run();
    json_ok(&o);
    let own = std::fs::read(agent_bin()).unwrap();
    let other_key = format!("agent/linux-{other}/carryover");
    assert_eq!(std::fs::read(store.join(own_agent_key())).unwrap(), own);
    assert_eq!(
        std::fs::read(store.join(&other_key)).unwrap(),
        elf_stand_in(other, "the other build")
    );
    assert_eq!(
        std::fs::read(store.join("agent/carryover.exe")).unwrap(),
        pe_stand_in("the Windows build")
    );
    assert!(!store.join("agent/carryover").exists());

    // this machine's architecture by default, the other one by --arch
    let o = Cmd::new("userdata").store(&store).run();
    assert_exit!(o, Some(0));
    let line = agent_line(&stdout(&o));
    assert!(
        line.contains(&format!(
            "/run/carryover-store/carryover/{}",
            own_agent_key()
        )) && line.contains(&sha256(&own)),
        "{line}"
    );
    let o = Cmd::new("userdata")
        .store(&store)
        .args(&["--arch", other])
        .run();
    assert_exit!(o, Some(0));
    let line = agent_line(&stdout(&o));
    assert!(
        line.contains(&format!("/run/carryover-store/carryover/{other_key}"))
            && line.contains(&sha256(&elf_stand_in(other, "the other build"))),
        "{line}"
    );
    // Windows has an x86_64 build only
    let o = Cmd::new("userdata")
        .store(&store)
        .args(&["--os", "windows", "--arch", "aarch64"])
        .run();
    assert_exit!(o, Some(2));
    // an agent given for the wrong architecture is refused, and says what it is
    let o = Cmd::new("userdata")
        .store(&store)
        .args(&["--arch", elf_arch(&agent_bin())])
        .arg("--agent")
        .arg(&other_bin)
        .run();
    assert_exit!(o, Some(2));
    assert!(
        stderr(&o).contains(&format!("is the agent for linux on {other}")),
        "{}",
        stderr(&o)
    );
}

/// #15.4: a store written before agents were kept per architecture (`agent/carryover`)
/// still serves its own architecture, and only that one; `check` names a store that lacks
/// the agent the change needs.
#[test]
fn an_old_stores_agent_still_serves_and_check_names_a_missing_one() {
    let t = tempfile::tempdir().unwrap();
    let (old, store, _u) = old_os_and_data_disk_store(t.path());
    capture(&old.dir, &store);
    // what an older carryover left: its agent under the old key only
    std::fs::rename(store.join(own_agent_key()), store.join("agent/carryover")).unwrap();
    let o = Cmd::new("userdata").store(&store).run();
    assert_exit!(o, Some(0));
    let line = agent_line(&stdout(&o));
    assert!(
        line.contains("/run/carryover-store/carryover/agent/carryover'")
            && line.contains(&sha256(&std::fs::read(agent_bin()).unwrap())),
        "{line}"
    );
    let o = Cmd::new("userdata")
        .store(&store)
        .args(&["--arch", other_arch()])
        .run();
    assert_exit!(o, Some(1));
    assert!(
        stderr(&o).contains(&format!("holds no agent for linux on {}", other_arch())),
        "{}",
        stderr(&o)
    );

    // check: a change to Windows needs carryover.exe in the store
    let missing = |o: &std::process::Output| {
        json(o)["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["key"] == "agent-missing")
    };
    let check_windows = || {
        Cmd::new("check")
            .root(&old.dir)
            .store(&store)
            .args(&["--target", "windows"])
            .json()
            .run()
    };
    let o = check_windows();
    assert!(missing(&o), "{}", stdout(&o));
    let f = json(&o)["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "agent-missing")
        .cloned()
        .unwrap();
    assert_eq!(f["severity"], "warning");
    assert!(
        f["remediation"].as_str().unwrap().contains("--agent"),
        "{f}"
    );
    // a capture for Windows warns likewise, unless it brings carryover.exe itself
    let bare = Tree::new(&t.path().join("bare"));
    bare.file("/etc/os-release", "ID=debian\n");
    let exe = t.path().join("carryover.exe");
    std::fs::write(&exe, pe_stand_in("the Windows build")).unwrap();
    for (with_exe, warned) in [(false, true), (true, false)] {
        let mut c = Cmd::new("capture")
            .root(&bare.dir)
            .store(t.path().join("windows-store"))
            .args(&["--target", "windows"]);
        if with_exe {
            c = c.arg("--agent").arg(&exe);
        }
        let o = c.json().run();
        assert_eq!(missing(&o), warned, "{}", stdout(&o));
    }
    // a change to Linux on this machine's architecture: the capture keeps its own build
    let o = Cmd::new("check").root(&old.dir).store(&store).json().run();
    assert!(!missing(&o), "{}", stdout(&o));
    let o = capture_with_agent(&old, &store, &exe);
    assert_exit!(o, Some(0));
    assert!(
        !missing(&check_windows()),
        "carryover.exe is in the store now"
    );
}
