//! The Windows build driven as a user would, under Wine (`../shared/tools/wincargo test`,
//! run by `.ci/run`): `probe` reads an ext4 and an LVM image (made on Linux with
//! mkfs.ext4 and pvcreate/vgcreate, kept compressed in tests/images/; the expected values
//! are what `blkid -p` and `vgs` said about them), `inspect` names the computer, and a
//! data path on Wine's C: drive goes through capture and restore unchanged.
#![cfg(windows)]

use std::path::Path;
use std::process::{Command, Output};

fn carryover(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_carryover"))
        .args(args)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap()
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
    let o = carryover(&[
        "capture",
        "--root",
        old.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--path",
        "/app",
        "--ack",
        "store-on-system-disk",
        "--format",
        "json",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let id = json(&o)["snapshot_id"].as_str().unwrap().to_string();
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
    let o = carryover(&[
        "restore",
        "--root",
        new.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--snapshot",
        &id,
        "--format",
        "json",
    ]);
    let v = json(&o);
    let data = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "data")
        .unwrap()
        .clone();
    assert_eq!(data["status"], "changed", "{v}");
    let hostname = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "hostname")
        .unwrap();
    assert_eq!(
        hostname["status"], "skipped",
        "Linux settings stay off Windows"
    );
    assert!(
        !new.join("etc").exists(),
        "nothing of /etc written on Windows"
    );
    assert_eq!(
        std::fs::read_to_string(new.join("app/config.ini")).unwrap(),
        "[app]\r\nport=8080\r\n"
    );
    assert_eq!(std::fs::read(new.join("app/sub/data.bin")).unwrap(), big);
    assert!(new.join("app/sub/ünïcode name.txt").is_file());
    let m_old = std::fs::metadata(old.join("app/sub/data.bin")).unwrap();
    let m_new = std::fs::metadata(new.join("app/sub/data.bin")).unwrap();
    assert_eq!(
        m_old.modified().unwrap(),
        m_new.modified().unwrap(),
        "mtime kept"
    );
}
