//! Instance identity from a metadata service on loopback (a small real HTTP server in the
//! test), the DMI fallback when it is absent or hangs, and restore choosing the snapshot
//! of the instance the cloud says this is.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use super::fixtures::*;

const UUID: &str = "B3D5E0F2-7C1A-4F7E-9D2B-0A1B2C3D4E5F";

/// Serves the OpenStack and EC2-style documents until the test ends; `hang` accepts and
/// never answers.
fn metadata_server(hang: bool) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in l.incoming().flatten() {
            if hang {
                held.push(stream);
                continue;
            }
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
            }
            let path = line.split_whitespace().nth(1).unwrap_or("");
            let (status, body) = match path {
                "/openstack/latest/meta_data.json" => (
                    "200 OK",
                    format!(
                        "{{\"uuid\": \"{UUID}\", \"hostname\": \"web01.novalocal\", \"meta\": {{}}}}"
                    ),
                ),
                "/latest/meta-data/instance-type" => ("200 OK", "s6.large.2".to_string()),
                _ => ("404 Not Found", String::new()),
            };
            let mut s = stream;
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

fn with_metadata(t: &Tree, url: &str) {
    t.file(
        "/etc/carryover/config.toml",
        &format!("[identity]\nmetadata_url = \"{url}\"\ntimeout_ms = 300\n"),
    );
}

#[test]
fn the_metadata_service_gives_the_instance_id_and_type() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(t.path());
    with_metadata(
        &old,
        &format!("http://127.0.0.1:{}", metadata_server(false)),
    );
    let v = json(&Cmd::new("inspect").root(&old.dir).json().run());
    assert_eq!(v["identity"]["instance_id"], UUID.to_lowercase());
    assert_eq!(v["identity"]["instance_id_source"], "metadata");
    assert_eq!(v["identity"]["instance_type"], "s6.large.2");
}

#[test]
fn an_absent_or_hanging_service_falls_back_to_dmi_within_the_timeout() {
    for port in [
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port(),
        metadata_server(true),
    ] {
        let t = tempfile::tempdir().unwrap();
        let old = old_debian(t.path());
        with_metadata(&old, &format!("http://127.0.0.1:{port}"));
        let t0 = Instant::now();
        let v = json(&Cmd::new("inspect").root(&old.dir).json().run());
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        assert_eq!(v["identity"]["instance_id"], INSTANCE);
        assert_eq!(v["identity"]["instance_id_source"], "dmi");
    }
}

#[test]
fn restore_picks_the_snapshot_of_the_instance_the_cloud_names() {
    let t = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}", metadata_server(false));
    let old = old_debian(&t.path().join("old"));
    with_metadata(&old, &url);
    let store = t.path().join("store");
    let o = Cmd::new("capture")
        .root(&old.dir)
        .store(&store)
        .json()
        .run();
    assert_eq!(json(&o)["instance_id"], UUID.to_lowercase());
    // the new OS's DMI says something else (a rebuilt image); the metadata service decides
    let new = new_ubuntu(&t.path().join("new"));
    new.file(
        "/sys/class/dmi/id/product_uuid",
        "99999999-2222-3333-4444-555555555555\n",
    );
    with_metadata(&new, &url);
    let o = Cmd::new("restore").root(&new.dir).store(&store).run();
    assert_exit!(o, Some(0));
    assert_eq!(new.read("/etc/hostname"), "web01\n");
}
