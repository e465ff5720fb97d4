//! The S3 store against a real S3-compatible server (s3s-fs: SigV4, multipart), started
//! here on loopback; `.ci/run` installs it (`cargo install s3s-fs --features binary`).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::fixtures::*;

const KEY: &str = "carryover-test-key";
const SECRET: &str = "carryover-test-secret-0123456789";

struct S3Server {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn s3s_fs() -> PathBuf {
    if let Ok(p) = std::env::var("S3S_FS") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").unwrap_or_default();
    for c in [
        format!("{home}/.cargo/bin/s3s-fs"),
        "/usr/local/bin/s3s-fs".into(),
    ] {
        if Path::new(&c).exists() {
            return PathBuf::from(c);
        }
    }
    panic!(
        "s3s-fs is not installed: `cargo install s3s-fs@0.14.1 --features binary` (.ci/run does it)"
    );
}

fn start(dir: &Path) -> S3Server {
    std::fs::create_dir_all(dir.join("carryover")).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(s3s_fs())
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--access-key",
            KEY,
            "--secret-key",
            SECRET,
        ])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "s3s-fs did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    S3Server {
        child,
        port,
        dir: dir.to_path_buf(),
    }
}

fn env(secret: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", KEY.into()),
        ("AWS_SECRET_ACCESS_KEY", secret.into()),
        ("AWS_REGION", "us-east-1".into()),
    ]
}

fn run(args: &[&str], env: &[(&'static str, String)]) -> std::process::Output {
    let e: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    carryover_env(args, &e)
}

#[test]
fn s3_round_trip_with_multipart_packs() {
    let t = tempfile::tempdir().unwrap();
    let server = start(&t.path().join("s3"));
    let old = Tree::new(&t.path().join("old"));
    old.file("/sys/class/dmi/id/product_uuid", &format!("{INSTANCE}\n"))
        .file("/etc/hostname", "web01\n")
        .file("/srv/app/config.toml", "[app]\nport = 8080\n")
        .file(
            "/etc/carryover/config.toml",
            &format!("[store]\nurl = \"s3://carryover/fleet/web01\"\nendpoint = \"http://127.0.0.1:{}\"\n[data]\npaths = [\"/srv\"]\n", server.port),
        );
    // 20 MiB that does not compress: packs of 16 MiB go up as multipart uploads
    let mut x: u64 = 42;
    let big: Vec<u8> = (0..(20 << 20))
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect();
    std::fs::write(old.p("/srv/app/blob.bin"), &big).unwrap();
    let o = run(
        &[
            "capture",
            "--root",
            old.dir.to_str().unwrap(),
            "--format",
            "json",
        ],
        &env(SECRET),
    );
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let packs: Vec<_> = walkdir::WalkDir::new(server.dir.join("carryover/fleet/web01/packs"))
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .collect();
    assert!(
        !packs.is_empty(),
        "the packs are in the bucket under the prefix"
    );
    assert!(
        packs.iter().any(|p| p.metadata().unwrap().len() > 8 << 20),
        "a pack larger than one part"
    );

    let cfg = old.p("/etc/carryover/config.toml");
    let cfg = cfg.to_str().unwrap();
    let v = run(
        &[
            "snapshots",
            "verify",
            "--root",
            old.dir.to_str().unwrap(),
            "--config",
            cfg,
        ],
        &env(SECRET),
    );
    assert_eq!(v.status.code(), Some(0), "{}\n{}", stdout(&v), stderr(&v));

    let new = Tree::new(&t.path().join("new"));
    new.file("/sys/class/dmi/id/product_uuid", &format!("{INSTANCE}\n"))
        .file("/etc/hostname", "fresh\n");
    let o = run(
        &[
            "restore",
            "--root",
            new.dir.to_str().unwrap(),
            "--config",
            cfg,
            "--format",
            "json",
        ],
        &env(SECRET),
    );
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert_eq!(std::fs::read(new.p("/srv/app/blob.bin")).unwrap(), big);
    assert_eq!(new.read("/srv/app/config.toml"), "[app]\nport = 8080\n");
    assert_eq!(new.read("/etc/hostname"), "web01\n");
}

#[test]
fn wrong_s3_credentials_are_a_clear_error() {
    let t = tempfile::tempdir().unwrap();
    let server = start(&t.path().join("s3"));
    let old = Tree::new(&t.path().join("old"));
    old.file("/etc/hostname", "web01\n");
    let url = "s3://carryover/x";
    let endpoint = format!("http://127.0.0.1:{}", server.port);
    let mut e = env("not-the-secret-XYZ");
    e.push(("AWS_ENDPOINT_URL", endpoint));
    let o = run(
        &[
            "capture",
            "--root",
            old.dir.to_str().unwrap(),
            "--store",
            url,
        ],
        &e,
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("credentials were refused"), "{err}");
    assert!(
        !err.contains("not-the-secret-XYZ"),
        "the secret is never printed"
    );
    // no credentials at all: a usage error that says where they come from
    let o = carryover_env(
        &[
            "capture",
            "--root",
            old.dir.to_str().unwrap(),
            "--store",
            url,
        ],
        &[("AWS_ENDPOINT_URL", "http://127.0.0.1:1")],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("AWS_ACCESS_KEY_ID"), "{}", stderr(&o));
}
