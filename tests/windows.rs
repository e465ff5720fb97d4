//! The Windows build driven as a user would, under Wine (`../shared/tools/wincargo test`,
//! run by `.ci/run`): `probe` reads an ext4 and an LVM image (made on Linux with
//! mkfs.ext4 and pvcreate/vgcreate, kept compressed in tests/images/; the expected values
//! are what `blkid -p` and `vgs` said about them), `inspect` names the computer, and a
//! data path on Wine's C: drive goes through capture and restore unchanged.
#![cfg(windows)]

use std::path::Path;
use std::process::{Command, Output};

/// Starts a program. Under load Wine's CreateProcess now and then fails with
/// ERROR_INTERNAL_ERROR (1359) before the program starts: that is retried.
fn retrying<T>(what: &str, mut start: impl FnMut() -> std::io::Result<T>) -> T {
    for _ in 0..5 {
        match start() {
            Err(e) if e.raw_os_error() == Some(1359) => {
                std::thread::sleep(std::time::Duration::from_millis(300))
            }
            r => return r.unwrap_or_else(|e| panic!("{what}: {e}")),
        }
    }
    start().unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Runs a program to the end.
fn run(cmd: &mut Command) -> Output {
    let what = format!("{cmd:?}");
    retrying(&what, || cmd.output())
}

// (the Windows tests use part of it)
#[allow(dead_code)]
#[path = "common/cmd.rs"]
mod cmd;
use cmd::Cmd;

/// The agent under test (for `Cmd`).
fn agent_bin() -> std::path::PathBuf {
    env!("CARGO_BIN_EXE_carryover").into()
}

/// The words that start `program` (for `Cmd`): the program itself under Wine.
fn runner_argv(program: &Path) -> Vec<std::ffi::OsString> {
    vec![program.into()]
}

/// The command that starts the agent (for `Cmd`).
fn agent_command() -> Command {
    Command::new(agent_bin())
}

/// The environment of every run: no AWS settings of the machine running the tests, then
/// `env` (for `Cmd`).
fn clean_env(c: &mut Command, env: &[(&str, &str)]) {
    c.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    for (k, v) in env {
        c.env(k, v);
    }
}

/// Runs a built command to its end (for `Cmd`), through Wine's retried start.
fn output(c: &mut Command) -> Output {
    run(c)
}

fn carryover(args: &[&str]) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_carryover"))
        .args(args)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY"))
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn unpack(name: &str, dir: &Path) -> std::path::PathBuf {
    let packed = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/images")
        .join(format!("{name}.zst"));
    let bytes = zstd::decode_all(std::fs::File::open(packed).unwrap()).unwrap();
    let out = dir.join(name);
    std::fs::write(&out, bytes).unwrap();
    out
}

#[test]
fn probe_reads_linux_images_on_windows() {
    let t = tempfile::tempdir().unwrap();
    let ext4 = unpack("ext4.img", t.path());
    let pv = unpack("pv.img", t.path());
    let o = carryover(&[
        "probe",
        ext4.to_str().unwrap(),
        pv.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json(&o);
    assert_eq!(v[0]["type"], "ext4");
    assert_eq!(v[0]["uuid"], "11111111-2222-4333-8444-555555555555");
    assert_eq!(v[0]["label"], "WINPROBE");
    assert_eq!(v[0]["version"], "1.0");
    assert_eq!(v[1]["type"], "LVM2_member");
    assert_eq!(v[1]["uuid"], "seGO2Z-dJcE-rbYr-3sED-LJZj-jRmb-p0Qf8S");
    assert_eq!(v[1]["lvm"]["name"], "carryoverwinvg");
    let vg_uuid = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/images/pv.vg_uuid"),
    )
    .unwrap();
    assert_eq!(v[1]["lvm"]["uuid"].as_str(), Some(vg_uuid.trim()));
}

#[test]
fn inspect_names_the_computer_its_dns_and_services() {
    let o = carryover(&["inspect", "--format", "json"]);
    let v = json(&o);
    println!("dns: {}", v["dns"]);
    println!("adapters: {}", v["windows"]["dns"]);
    let services = v["windows"]["services"]
        .as_array()
        .expect("services from the SCM");
    println!(
        "{} services, e.g. {}",
        services.len(),
        services.first().cloned().unwrap_or_default()
    );
    assert!(!services.is_empty(), "{v}");
    assert!(
        services
            .iter()
            .all(|s| s["name"].as_str().is_some_and(|n| !n.is_empty())
                && [
                    "boot", "system", "auto", "demand", "disabled", "unknown", ""
                ]
                .contains(&s["start_type"].as_str().unwrap())),
        "{services:?}"
    );
    assert!(v["windows"]["dns"].is_array());
    if v["windows"]["dns"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| !a["servers"].as_array().unwrap().is_empty())
    {
        assert_eq!(v["dns"]["manager"], "windows");
        assert!(!v["dns"]["nameservers"].as_array().unwrap().is_empty());
    }
    let name = v["identity"]["hostname"].as_str().unwrap().to_string();
    assert!(!name.is_empty(), "{v}");
    let env = std::env::var("COMPUTERNAME").unwrap_or_default();
    assert!(
        env.is_empty() || name.eq_ignore_ascii_case(&env),
        "{name} vs COMPUTERNAME {env}"
    );
}

#[test]
fn a_data_path_round_trips_on_the_c_drive() {
    let t = tempfile::tempdir().unwrap();
    let old = t.path().join("old");
    let new = t.path().join("new");
    let store = t.path().join("store");
    std::fs::create_dir_all(old.join("app/sub")).unwrap();
    std::fs::create_dir_all(&new).unwrap();
    std::fs::write(old.join("app/config.ini"), "[app]\r\nport=8080\r\n").unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(old.join("app/sub/data.bin"), &big).unwrap();
    std::fs::write(old.join("app/sub/ünïcode name.txt"), "x").unwrap();
    {
        // a hidden file: Windows attributes travel too
        use std::os::windows::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .attributes(0x2) // FILE_ATTRIBUTE_HIDDEN
            .open(old.join("app/desktop.ini"))
            .unwrap();
        std::io::Write::write_all(&mut f, b"[.ShellClassInfo]\r\n").unwrap();
        use std::os::windows::fs::MetadataExt;
        let m = std::fs::metadata(old.join("app/desktop.ini")).unwrap();
        assert_eq!(m.file_attributes() & 0x2, 0x2, "the old file is hidden");
    }
    let id = capture(old.to_str().unwrap(), &store, Some("/app"));
    assert!(
        store.join("agent/carryover.exe").is_file() && !store.join("agent/carryover").exists(),
        "the Windows agent is kept beside (not over) a Linux one"
    );
    let o = carryover(&[
        "snapshots",
        "verify",
        &id,
        "--store",
        store.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = restore(new.to_str().unwrap(), &store, &id, &[]);
    assert_eq!(step_of(&v, "data")["status"], "changed", "{v}");
    assert_eq!(
        step_of(&v, "hostname")["status"],
        "skipped",
        "a directory tree is not the running Windows: its settings are left alone"
    );
    assert!(
        !new.join("etc").exists() && !new.join("var").exists(),
        "nothing of /etc or /var written on Windows"
    );
    let report = std::fs::read_to_string(new.join(r"ProgramData\carryover\log\restore-report.txt"))
        .expect("the restore report in ProgramData");
    assert!(report.contains("READY"), "{report}");
    assert_eq!(
        std::fs::read_to_string(new.join("app/config.ini")).unwrap(),
        "[app]\r\nport=8080\r\n"
    );
    assert_eq!(std::fs::read(new.join("app/sub/data.bin")).unwrap(), big);
    assert!(new.join("app/sub/ünïcode name.txt").is_file());
    assert!(
        v["failed_files"].as_array().unwrap().is_empty(),
        "security descriptors and attributes restored without complaint: {v}"
    );
    {
        use std::os::windows::fs::MetadataExt;
        let hidden = std::fs::metadata(new.join("app/desktop.ini")).unwrap();
        assert_eq!(hidden.file_attributes() & 0x2, 0x2, "still hidden");
        let plain = std::fs::metadata(new.join("app/config.ini")).unwrap();
        assert_eq!(plain.file_attributes() & 0x2, 0, "and only that one");
    }
    let m_old = std::fs::metadata(old.join("app/sub/data.bin")).unwrap();
    let m_new = std::fs::metadata(new.join("app/sub/data.bin")).unwrap();
    assert_eq!(
        m_old.modified().unwrap(),
        m_new.modified().unwrap(),
        "mtime kept"
    );
}

/// Captures `root` (with one more data path) into `store`; returns the snapshot id.
fn capture(root: &str, store: &Path, path: Option<&str>) -> String {
    let mut cmd = Cmd::new("capture").root(root).store(store);
    if let Some(p) = path {
        cmd = cmd.args(&["--path", p]);
    }
    let o = cmd.args(&["--ack", "store-on-system-disk"]).json().run();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    json(&o)["snapshot_id"].as_str().unwrap().to_string()
}

/// Restores snapshot `id` from `store` onto `root`; returns the JSON report.
fn restore(root: &str, store: &Path, id: &str, more: &[&str]) -> serde_json::Value {
    json(
        &Cmd::new("restore")
            .root(root)
            .store(store)
            .args(&["--snapshot", id])
            .json()
            .args(more)
            .run(),
    )
}

/// One step of a restore report.
fn step_of(v: &serde_json::Value, name: &str) -> serde_json::Value {
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name}: {v}"))
        .clone()
}

/// `reg.exe` of the Windows under test.
fn reg(args: &[&str]) -> String {
    let o = run(Command::new("reg").args(args));
    assert!(
        o.status.success(),
        "reg {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `sc.exe` of the Windows under test.
fn sc(args: &[&str]) {
    let o = run(Command::new("sc").args(args));
    assert!(o.status.success(), "sc {args:?}: {}", text(&o));
}

/// A value as `reg query` prints it (`    NAME    REG_SZ    value`).
fn reg_value(key: &str, name: &str) -> String {
    let out = run(Command::new("reg").args(["query", key, "/v", name]));
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| {
            let l = l.trim();
            l.strip_prefix(name)
                .and_then(|r| r.trim_start().split_once(char::is_whitespace))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default()
}

const SERVICES: &str = r"HKLM\SYSTEM\CurrentControlSet\Services";
const TCPIP: &str = r"HKLM\SYSTEM\CurrentControlSet\Services\Tcpip\Parameters";
const W32TIME: &str = r"HKLM\SYSTEM\CurrentControlSet\Services\W32Time\Parameters";

fn set_sz(key: &str, name: &str, value: &str) {
    reg(&["add", key, "/v", name, "/t", "REG_SZ", "/d", value, "/f"]);
}

/// The adapters' interface keys (`…\Interfaces\{GUID}`), by the GUIDs inspect shows.
fn interface_keys() -> Vec<String> {
    let v = json(&Cmd::new("inspect").root(r"C:\").json().run());
    v["windows"]["dns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!(r"{TCPIP}\Interfaces\{}", a["guid"].as_str().unwrap()))
        .collect()
}

/// The tests that change the running (Wine) system's settings take turns.
static LIVE: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn windows_settings_round_trip_through_capture_and_restore() {
    let _turn = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let root = r"C:\";
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    let data = Path::new(r"C:\carryover-settings-test");
    let hosts = Path::new(r"C:\windows\system32\drivers\etc\hosts");
    // (without what an interrupted earlier run may have left)
    let hosts_before: String = std::fs::read_to_string(hosts)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.contains("db.corp.example"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    let saved = [
        (TCPIP, "SearchList", reg_value(TCPIP, "SearchList")),
        (W32TIME, "NtpServer", reg_value(W32TIME, "NtpServer")),
        (W32TIME, "Type", reg_value(W32TIME, "Type")),
    ];
    let nics = interface_keys();
    assert!(!nics.is_empty(), "Wine lists its adapters' interface keys");

    // the old OS: DNS set by hand, a search list, a time server, a zone, hosts, data
    for k in &nics {
        set_sz(k, "NameServer", "10.1.2.3,10.1.2.4");
        set_sz(k, "Domain", "corp.example");
    }
    set_sz(TCPIP, "SearchList", "corp.example,example.net");
    set_sz(W32TIME, "NtpServer", "ntp.myhuaweicloud.com,0x9");
    set_sz(W32TIME, "Type", "NTP");
    std::fs::write(
        hosts,
        format!("{hosts_before}\r\n10.9.8.7 db.corp.example db\r\n"),
    )
    .unwrap();
    std::fs::create_dir_all(data).unwrap();
    std::fs::write(data.join("app.ini"), "port=8080\r\n").unwrap();
    // a service whose program lives on a data disk, and one set to start on demand
    for name in ["carryover-probe", "carryover-probe2"] {
        let _ = Command::new("sc").args(["delete", name]).output();
    }
    sc(&[
        "create",
        "carryover-probe",
        "binPath=",
        r"C:\windows\system32\notepad.exe",
        "start=",
        "demand",
    ]);
    sc(&[
        "create",
        "carryover-probe2",
        "binPath=",
        r"C:\windows\system32\notepad.exe",
        "start=",
        "demand",
    ]);

    let id = capture(root, &store, Some("/carryover-settings-test"));
    let o = carryover(&[
        "snapshots",
        "show",
        &id,
        "--store",
        store.to_str().unwrap(),
        "--format",
        "json",
    ]);
    println!("{}", String::from_utf8_lossy(&o.stdout));

    // Change OS: a fresh Windows has none of it
    for k in &nics {
        set_sz(k, "NameServer", "");
        set_sz(k, "Domain", "");
    }
    set_sz(TCPIP, "SearchList", "");
    set_sz(W32TIME, "NtpServer", "time.windows.com,0x9");
    set_sz(W32TIME, "Type", "NT5DS");
    std::fs::write(hosts, &hosts_before).unwrap();
    std::fs::remove_dir_all(data).unwrap();
    sc(&["delete", "carryover-probe"]);
    // (Wine's sc.exe has no `config`)
    carryover::sys::win::set_start_type("carryover-probe2", "disabled").unwrap();
    assert_eq!(
        reg_value(&format!(r"{SERVICES}\carryover-probe2"), "Start"),
        "0x4"
    );

    let v = restore(root, &store, &id, &[]);
    println!("{}", serde_json::to_string_pretty(&v).unwrap());
    let step = |name: &str| step_of(&v, name);
    let got = [
        (reg_value(TCPIP, "SearchList"), "corp.example,example.net"),
        (reg_value(W32TIME, "NtpServer"), "ntp.myhuaweicloud.com,0x9"),
        (reg_value(W32TIME, "Type"), "NTP"),
    ];
    let nameservers: Vec<String> = nics.iter().map(|k| reg_value(k, "NameServer")).collect();
    let hosts_after = std::fs::read_to_string(hosts).unwrap_or_default();
    let data_back = std::fs::read_to_string(data.join("app.ini")).unwrap_or_default();
    let starts = [
        reg_value(&format!(r"{SERVICES}\carryover-probe"), "Start"),
        reg_value(&format!(r"{SERVICES}\carryover-probe2"), "Start"),
    ];
    let _ = Command::new("sc")
        .args(["delete", "carryover-probe"])
        .output();
    let _ = Command::new("sc")
        .args(["delete", "carryover-probe2"])
        .output();

    // put the prefix back before asserting, so a failure leaves Wine as it was
    for k in &nics {
        set_sz(k, "NameServer", "");
        set_sz(k, "Domain", "");
    }
    for (key, name, value) in &saved {
        set_sz(key, name, value);
    }
    std::fs::write(hosts, &hosts_before).unwrap();
    let _ = std::fs::remove_dir_all(data);

    // Wine sets the zone from the host's at every start: the old OS's cannot differ, so
    // the zone is shown moving in the Linux → Windows test below, within one process.
    assert_eq!(step("timezone")["status"], "unchanged", "{v}");
    for s in ["dns", "ntp", "hosts", "data"] {
        assert_eq!(step(s)["status"], "changed", "{s}: {v}");
    }
    assert_eq!(v["state"], "ready", "{v}");
    for (value, want) in got {
        assert_eq!(value, want);
    }
    assert!(
        nameservers.iter().all(|n| n == "10.1.2.3,10.1.2.4"),
        "{nameservers:?}"
    );
    assert!(
        hosts_after.contains("10.9.8.7") && hosts_after.contains("db.corp.example"),
        "{hosts_after}"
    );
    assert_eq!(data_back, "port=8080\r\n");
    let services = step("services");
    assert_eq!(services["status"], "changed", "{services}");
    assert!(
        services["detail"]
            .as_str()
            .unwrap()
            .contains("registered again: carryover-probe"),
        "{services}"
    );
    assert_eq!(starts, ["0x3", "0x3"], "demand start, as before the change");
}

#[test]
fn a_linux_snapshot_brings_its_resolvers_zone_and_time_servers_to_windows() {
    let _turn = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let me = json(&Cmd::new("inspect").root(r"C:\").json().run())["identity"]["hostname"]
        .as_str()
        .unwrap()
        .to_string();
    let t = tempfile::tempdir().unwrap();
    let linux = t.path().join("linux");
    let store = t.path().join("store");
    std::fs::create_dir_all(linux.join("etc/chrony")).unwrap();
    // the same name: renaming Wine's computer would outlive the test
    std::fs::write(linux.join("etc/hostname"), format!("{me}\n")).unwrap();
    std::fs::write(
        linux.join("etc/resolv.conf"),
        "nameserver 10.5.5.5\nnameserver 127.0.0.53\nsearch lin.example\n",
    )
    .unwrap();
    std::fs::write(linux.join("etc/timezone"), "Asia/Tokyo\n").unwrap();
    std::fs::write(
        linux.join("etc/chrony/chrony.conf"),
        "server ntp.lin.example iburst\n",
    )
    .unwrap();
    let id = capture(linux.to_str().unwrap(), &store, None);
    let saved = [
        (TCPIP, "SearchList", reg_value(TCPIP, "SearchList")),
        (W32TIME, "NtpServer", reg_value(W32TIME, "NtpServer")),
        (W32TIME, "Type", reg_value(W32TIME, "Type")),
    ];
    let nics = interface_keys();
    let plan = restore(r"C:\", &store, &id, &["--dry-run"]);
    let v = restore(r"C:\", &store, &id, &[]);
    let nameservers: Vec<String> = nics.iter().map(|k| reg_value(k, "NameServer")).collect();
    let got = (
        reg_value(TCPIP, "SearchList"),
        reg_value(W32TIME, "NtpServer"),
        reg_value(W32TIME, "Type"),
    );
    for k in &nics {
        set_sz(k, "NameServer", "");
    }
    for (key, name, value) in &saved {
        set_sz(key, name, value);
    }
    println!("{}", serde_json::to_string_pretty(&v).unwrap());
    let step = |name: &str| step_of(&v, name);
    assert_eq!(step("dns")["status"], "changed");
    assert!(
        nameservers.iter().all(|n| n == "10.5.5.5"),
        "the stub resolver is left out: {nameservers:?}"
    );
    assert_eq!(got.0, "lin.example");
    assert_eq!(got.1, "ntp.lin.example,0x9");
    assert_eq!(got.2, "NTP");
    assert_eq!(step("accounts")["status"], "skipped");
    assert_eq!(step("services")["status"], "skipped");
    // Asia/Tokyo is Windows' "Tokyo Standard Time"; Wine cannot switch zones (they follow
    // the host's), so the real switch fails there and says why: the one failed step.
    let planned = step_of(&plan, "timezone");
    assert_eq!(planned["status"], "would-change", "{plan}");
    assert_eq!(planned["detail"], "Tokyo Standard Time");
    assert_eq!(step("timezone")["status"], "failed");
    assert!(
        step("timezone")["detail"]
            .as_str()
            .unwrap()
            .contains("Wine cannot change the time zone")
    );
    let failed: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "failed")
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, vec!["timezone"]);
    assert_eq!(v["state"], "degraded", "{v}");
}

/// Runs a command that might wait forever on a service (`net start`, `msiexec`): killed
/// after `secs`. Returns its exit code (`None`: killed) and output as text.
fn bounded(cmd: &mut Command, secs: u64) -> (Option<i32>, String) {
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let what = format!("{cmd:?}");
    let mut child = retrying(&what, || cmd.spawn());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let o = child.wait_with_output().unwrap();
            return (st.code(), text(&o));
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return (None, format!("killed after {secs} s"));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn the_service_installs_starts_restores_and_uninstalls() {
    let _turn = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    let data = Path::new(r"C:\carryover-service-test");
    let program_data = Path::new(r"C:\ProgramData\carryover");
    std::fs::create_dir_all(data).unwrap();
    std::fs::write(data.join("app.ini"), "port=9090\r\n").unwrap();
    capture(r"C:\", &store, Some("/carryover-service-test"));

    // Change OS: the data and carryover's own record are gone; the new OS has the agent,
    // its config naming the store, and the service. Its system volume is a new one: under
    // Wine C: keeps its serial, so the snapshot's old-system marker is taken out (else the
    // restore rightly refuses to run on "the system that took it")
    for e in std::fs::read_dir(store.join("snapshots")).unwrap() {
        let p = e.unwrap().path();
        let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        m.as_object_mut().unwrap().remove("origin");
        std::fs::write(&p, serde_json::to_vec(&m).unwrap()).unwrap();
    }
    std::fs::remove_dir_all(data).unwrap();
    let _ = std::fs::remove_dir_all(program_data.join("state"));
    std::fs::create_dir_all(program_data).unwrap();
    std::fs::write(
        program_data.join("config.toml"),
        format!("[store]\nurl = '{}'\n", store.display()),
    )
    .unwrap();
    let o = carryover(&["service", "install"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = carryover(&["service", "status"]);
    assert!(text(&o).contains("carryover: stopped"), "{}", text(&o));
    let started = bounded(Command::new("net").args(["start", "carryover"]), 120);

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut state = String::new();
    while std::time::Instant::now() < deadline {
        state = text(&carryover(&["service", "status"]));
        if data.join("app.ini").is_file() && state.contains("stopped") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let restored = std::fs::read_to_string(data.join("app.ini")).unwrap_or_default();
    let log = std::fs::read_to_string(program_data.join(r"state\service.log")).unwrap_or_default();
    let local = std::fs::read_to_string(program_data.join(r"state\state.json")).unwrap_or_default();
    let uninstall = carryover(&["service", "uninstall"]);
    let after = text(&carryover(&["service", "status"]));
    let _ = std::fs::remove_file(program_data.join("config.toml"));
    let _ = std::fs::remove_dir_all(data);

    println!("net start: {started:?}\nservice log:\n{log}");
    assert_eq!(
        restored, "port=9090\r\n",
        "the service restored the data; now {state}"
    );
    assert!(state.contains("stopped"), "it stops when done: {state}");
    assert!(local.contains("last_restore"), "{local}");
    assert!(log.contains("data"), "the restore's log is kept: {log}");
    assert_eq!(uninstall.status.code(), Some(0), "{}", text(&uninstall));
    assert!(text(&uninstall).contains("removed"));
    assert!(after.contains("not installed"), "{after}");
}

/// The MSI that packaging/build-windows made from this build (`.ci/run` makes it before
/// the Windows tests; CARRYOVER_MSI names another).
fn msi() -> std::path::PathBuf {
    if let Ok(p) = std::env::var("CARRYOVER_MSI") {
        return p.into();
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/packages");
    std::fs::read_dir(&dir)
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("-x64.msi"))
        .unwrap_or_else(|| {
            panic!(
                "no MSI in {}: run packaging/build-windows target/windows/x86_64-pc-windows-gnu/debug/carryover.exe first (.ci/run does)",
                dir.display()
            )
        })
}

#[test]
fn the_msi_installs_the_agent_config_and_service_and_uninstalls_them() {
    let _turn = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let msi = msi();
    let exe = Path::new(r"C:\Program Files\carryover\carryover.exe");
    let config = Path::new(r"C:\ProgramData\carryover\config.toml");
    let install = bounded(Command::new("msiexec").arg("/i").arg(&msi).arg("/qn"), 300);
    assert_eq!(install.0, Some(0), "msiexec /i: {}", install.1);
    let installed = exe.is_file();
    let config_text = std::fs::read_to_string(config).unwrap_or_default();
    let state = text(&run(Command::new(exe).args(["service", "status"])));
    let remove = bounded(Command::new("msiexec").arg("/x").arg(&msi).arg("/qn"), 300);
    let after = text(&carryover(&["service", "status"]));
    let _ = std::fs::remove_file(config);

    assert!(installed, "{} installed", exe.display());
    assert!(
        config_text.contains("[store]"),
        "the default config: {config_text}"
    );
    assert!(
        state.contains("carryover: stopped"),
        "the service is registered: {state}"
    );
    assert_eq!(remove.0, Some(0), "msiexec /x: {}", remove.1);
    assert!(!exe.exists(), "uninstall removes the agent");
    assert!(after.contains("not installed"), "and the service: {after}");
}

#[test]
fn windows_user_data_refuses_a_store_on_the_system_drive() {
    let t = tempfile::tempdir().unwrap(); // on C: under Wine, as on Windows
    let o = carryover(&[
        "userdata",
        "--os",
        "windows",
        "--store",
        t.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("system drive"), "{}", text(&o));
}

#[test]
fn cmd_hooks_run_with_their_environment_and_a_failing_one_stops_the_capture() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let store = t.path().join("store");
    let hooks = root.join(r"ProgramData\carryover\hooks\pre-capture.d");
    std::fs::create_dir_all(&hooks).unwrap();
    std::fs::write(
        hooks.join("10-note.cmd"),
        "@echo off\r\necho %CARRYOVER_PHASE% %CARRYOVER_SNAPSHOT_ID%> \"%CARRYOVER_ROOT%\\hook-ran.txt\"\r\n",
    )
    .unwrap();
    std::fs::write(hooks.join("README.txt"), "not a hook").unwrap();
    let id = capture(root.to_str().unwrap(), &store, None);
    let ran = std::fs::read_to_string(root.join("hook-ran.txt")).unwrap_or_default();
    assert_eq!(ran.trim(), format!("pre-capture {id}"));

    std::fs::write(
        hooks.join("20-quiesce.cmd"),
        "@echo off\r\necho the database did not quiesce 1>&2\r\nexit /b 3\r\n",
    )
    .unwrap();
    let o = Cmd::new("capture")
        .root(&root)
        .store(&store)
        .args(&["--ack", "store-on-system-disk"])
        .run();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("20-quiesce.cmd") && text(&o).contains("did not quiesce"),
        "{}",
        text(&o)
    );
}

#[test]
fn check_on_windows_flags_ntfs_data_volumes_for_a_change_to_linux() {
    let _turn = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    // Wine's volumes: C: (the system drive) and Z: (the host's /), both "NTFS"
    let o = Cmd::new("check")
        .root(r"C:\")
        .args(&["--target", "linux"])
        .json()
        .run();
    let v = json(&o);
    let keys: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    let ntfs: Vec<&serde_json::Value> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["key"] == "ntfs-needs-ntfs3g")
        .collect();
    assert_eq!(ntfs.len(), 1, "{v}");
    assert!(
        ntfs[0]["message"].as_str().unwrap().starts_with("Z:"),
        "{v}"
    );
    assert!(
        !keys.contains(&"mount-table-unavailable") && !keys.contains(&"disks-unavailable"),
        "Linux's notes stay off Windows: {keys:?}"
    );
    let o = Cmd::new("check")
        .root(r"C:\")
        .args(&["--target", "windows"])
        .json()
        .run();
    assert!(
        !json(&o)["findings"]
            .to_string()
            .contains("ntfs-needs-ntfs3g")
    );
}
