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

/// Bytes that do not compress.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect()
}

/// An old OS whose config names the S3 store (`fleet/web01` in the server's bucket) and
/// the data path /srv.
fn old_tree(dir: &Path, port: u16) -> Tree {
    let old = Tree::new(dir);
    old.file("/sys/class/dmi/id/product_uuid", &format!("{INSTANCE}\n"))
        .file("/etc/hostname", "web01\n")
        .file("/srv/app/config.toml", "[app]\nport = 8080\n")
        .file(
            "/etc/carryover/config.toml",
            &format!("[store]\nurl = \"s3://carryover/fleet/web01\"\nendpoint = \"http://127.0.0.1:{}\"\n[data]\npaths = [\"/srv\"]\n", port),
        );
    old
}

/// A new OS of the same instance, restored from the store `cfg` names.
fn restore_new(dir: &Path, cfg: &str) -> Tree {
    let new = Tree::new(dir);
    new.file("/sys/class/dmi/id/product_uuid", &format!("{INSTANCE}\n"))
        .file("/etc/hostname", "fresh\n");
    let o = Cmd::new("restore")
        .root(&new.dir)
        .config(cfg)
        .json()
        .envs(&env(SECRET))
        .run();
    assert_exit!(o, Some(0));
    new
}

impl S3Server {
    /// The store's pack objects as the server keeps them on disk.
    fn packs(&self) -> Vec<walkdir::DirEntry> {
        walkdir::WalkDir::new(self.dir.join("carryover/fleet/web01/packs"))
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_file())
            .collect()
    }
}

/// 20 MiB that does not compress goes up in packs of at most one part (8 MiB), a PUT
/// each; the agent, many parts long, goes up as a multipart upload and is whole in the
/// bucket; the restore reads it all back.
#[test]
fn s3_round_trip_with_one_part_packs_and_a_multipart_agent() {
    let t = tempfile::tempdir().unwrap();
    let server = start(&t.path().join("s3"));
    let old = old_tree(&t.path().join("old"), server.port);
    let big = noise(42, 20 << 20);
    std::fs::write(old.p("/srv/app/blob.bin"), &big).unwrap();
    let o = Cmd::new("capture")
        .root(&old.dir)
        .json()
        .envs(&env(SECRET))
        .run();
    assert_exit!(o, Some(0));
    let packs = server.packs();
    assert!(
        !packs.is_empty(),
        "the packs are in the bucket under the prefix"
    );
    assert!(packs.len() >= 3, "20 MiB in packs of 8: {}", packs.len());
    assert!(
        packs.iter().all(|p| p.metadata().unwrap().len() <= 8 << 20),
        "every pack is one part"
    );
    let agent = std::fs::read(
        server
            .dir
            .join("carryover/fleet/web01")
            .join(own_agent_key()),
    )
    .unwrap();
    assert!(agent.len() > 8 << 20, "the agent is more than one part");
    assert!(
        agent == std::fs::read(agent_bin()).unwrap(),
        "the agent's parts are put together in order"
    );

    let cfg = old.p("/etc/carryover/config.toml");
    let cfg = cfg.to_str().unwrap();
    let v = Cmd::new("snapshots verify")
        .root(&old.dir)
        .config(cfg)
        .envs(&env(SECRET))
        .run();
    assert_exit!(v, Some(0));
    // the pack indexes are kept under the root, by store id, by the commands after the first
    let cached: Vec<_> = walkdir::WalkDir::new(old.p("/var/lib/carryover/cache"))
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .collect();
    assert_eq!(cached.len(), packs.len(), "one cached index per pack");

    let new = restore_new(&t.path().join("new"), cfg);
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
    let o = Cmd::new("capture").root(&old.dir).store(url).envs(&e).run();
    assert_exit!(o, Some(1));
    let err = stderr(&o);
    assert!(err.contains("credentials were refused"), "{err}");
    assert!(
        !err.contains("not-the-secret-XYZ"),
        "the secret is never printed"
    );
    // no credentials at all: a usage error that says where they come from
    let o = Cmd::new("capture")
        .root(&old.dir)
        .store(url)
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
        .run();
    assert_exit!(o, Some(2));
    assert!(stderr(&o).contains("AWS_ACCESS_KEY_ID"), "{}", stderr(&o));
}

/// A store that cannot be reached: the error names the endpoint's failure, never the
/// presigned URL (its access key id, signature and session token) — not on stderr, not in
/// the restore's report or record.
#[test]
fn an_unreachable_s3_store_never_shows_the_signed_url() {
    let t = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut e = env(SECRET);
    e.push(("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")));
    e.push(("AWS_SESSION_TOKEN", "session-token-SECRET-42".into()));
    let new = Tree::new(&t.path().join("new"));
    new.file("/etc/hostname", "ubuntu\n");
    for cmd in ["capture", "restore"] {
        let o = Cmd::new(cmd)
            .root(&new.dir)
            .store("s3://carryover/x")
            .envs(&e)
            .run();
        assert_exit!(o, Some(1));
        let err = stderr(&o);
        assert!(err.contains("127.0.0.1"), "{err}");
        for secret in [
            "session-token-SECRET-42",
            KEY,
            SECRET,
            "X-Amz-",
            "Signature",
        ] {
            assert!(!err.contains(secret), "{cmd}: {secret} shown: {err}");
        }
    }
    for f in walkdir::WalkDir::new(&new.dir).into_iter().flatten() {
        if f.file_type().is_file() {
            let text = String::from_utf8_lossy(&std::fs::read(f.path()).unwrap()).into_owned();
            for secret in ["session-token-SECRET-42", KEY, "X-Amz-"] {
                assert!(!text.contains(secret), "{}: {secret}", f.path().display());
            }
        }
    }
}

/// A metadata service on loopback that hands out the S3 server's key as the instance's
/// temporary credentials (Huawei Cloud's `securitykey` document).
fn credentials_server() -> u16 {
    serve_get(|path| match path {
        "/openstack/latest/securitykey" => (
            "200 OK",
            format!(
                "{{\"credential\": {{\"access\": \"{KEY}\", \"secret\": \"{SECRET}\", \"securitytoken\": \"session-token-x\", \"expires_at\": \"2099-01-01T00:00:00Z\"}}}}"
            ),
        ),
        _ => ("404 Not Found", String::new()),
    })
}

/// GET over plain HTTP/1.0: (status, body).
fn http_get(url: &str) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = TcpStream::connect(host).unwrap();
    write!(s, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&all[..end]).to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, all[end + 4..].to_vec())
}

#[test]
fn user_data_for_an_s3_store_and_credentials_from_the_metadata_service() {
    let t = tempfile::tempdir().unwrap();
    let server = start(&t.path().join("s3"));
    let old = Tree::new(&t.path().join("old"));
    old.file("/sys/class/dmi/id/product_uuid", &format!("{INSTANCE}\n"))
        .file("/etc/hostname", "web01\n")
        .file("/srv/app/config.toml", "[app]\nport = 8080\n")
        .file(
            "/etc/carryover/config.toml",
            &format!("[store]\nurl = \"s3://carryover/fleet/web01\"\nendpoint = \"http://127.0.0.1:{}\"\nregion = \"cn-north-4\"\n[data]\npaths = [\"/srv\"]\n[report]\nurl = \"https://orch.example.com/api\"\n", server.port),
        );
    let root = old.dir.to_str().unwrap();
    let o = Cmd::new("capture").root(root).envs(&env(SECRET)).run();
    assert_exit!(o, Some(0));

    let o = Cmd::new("userdata").root(root).envs(&env(SECRET)).run();
    assert_exit!(o, Some(0));
    let text = stdout(&o);
    assert!(text.len() < 32 * 1024 && !text.contains(SECRET), "{text}");
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).unwrap();
    let script = docs[0]["runcmd"][0][2].as_str().unwrap().to_string();
    assert!(
        script.contains("url = \"s3://carryover/fleet/web01\""),
        "{script}"
    );
    assert!(script.contains(&format!("endpoint = \"http://127.0.0.1:{}\"", server.port)));
    assert!(script.contains("region = \"cn-north-4\""));
    assert!(!script.contains("access_key") && !script.contains("mount-store"));
    let syntax = Command::new("sh")
        .args(["-n", "-c", &script])
        .status()
        .unwrap();
    assert!(syntax.success());
    // the presigned URL in it downloads the agent kept in the store, and nothing else
    let agent_url = script
        .split_whitespace()
        .find(|w| w.starts_with("'http://"))
        .unwrap()
        .trim_matches('\'')
        .to_string();
    let (status, body) = http_get(&agent_url);
    assert_eq!(status, 200);
    assert_eq!(body, std::fs::read(agent_bin()).unwrap());
    let (status, _) = http_get(&agent_url.replace(&own_agent_key(), "carryover-store.json"));
    assert_ne!(status, 200, "the signature covers the agent only");
    // #16.1: the agent is pinned — what is downloaded is checked against the SHA-256 of
    // the agent in the store before it is installed, as from a store on a disk
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&body))
    };
    let at = |what: &str| {
        script
            .find(what)
            .unwrap_or_else(|| panic!("no {what} in {script}"))
    };
    let fetched = at("fetch 'http://");
    let checked = at(&format!(
        "echo '{sha}  /usr/local/lib/carryover/agent.new' | sha256sum -c"
    ));
    let installed = at("install -m 0755 /usr/local/lib/carryover/agent.new");
    assert!(fetched < checked && checked < installed, "{script}");

    // the new OS: the store by URL, no key anywhere, the agency's temporary credentials
    let md = credentials_server();
    let new = Tree::new(&t.path().join("new"));
    new.file("/sys/class/dmi/id/product_uuid", &format!("{INSTANCE}\n"))
        .file("/etc/hostname", "fresh\n")
        .file(
            "/etc/carryover/config.toml",
            &format!("[store]\nurl = \"s3://carryover/fleet/web01\"\nendpoint = \"http://127.0.0.1:{}\"\nregion = \"cn-north-4\"\n[identity]\nmetadata_url = \"http://127.0.0.1:{md}\"\ntimeout_ms = 2000\n", server.port),
        );
    let o = Cmd::new("restore").root(&new.dir).json().run();
    assert_exit!(o, Some(0));
    assert_eq!(new.read("/srv/app/config.toml"), "[app]\nport = 8080\n");
    assert_eq!(new.read("/etc/hostname"), "web01\n");
    assert!(!stdout(&o).contains(SECRET) && !stderr(&o).contains(SECRET));
}

#[test]
fn s3_forget_and_prune_free_the_space() {
    let t = tempfile::tempdir().unwrap();
    let server = start(&t.path().join("s3"));
    let old = old_tree(&t.path().join("old"), server.port);
    let root = old.dir.to_str().unwrap();
    let cfg = old.p("/etc/carryover/config.toml");
    let cfg = cfg.to_str().unwrap();
    std::fs::write(old.p("/srv/app/first.bin"), noise(7, 3 << 20)).unwrap();
    let capture = || {
        let o = Cmd::new("capture")
            .root(root)
            .json()
            .envs(&env(SECRET))
            .run();
        assert_exit!(o, Some(0));
    };
    capture();
    std::fs::remove_file(old.p("/srv/app/first.bin")).unwrap();
    let second = noise(8, 3 << 20);
    std::fs::write(old.p("/srv/app/second.bin"), &second).unwrap();
    capture();
    let size = || -> u64 {
        server
            .packs()
            .iter()
            .map(|e| e.metadata().unwrap().len())
            .sum()
    };
    let before = size();
    let upkeep = |args: &[&str]| {
        let o = Cmd::new("snapshots")
            .args(args)
            .root(root)
            .config(cfg)
            .envs(&env(SECRET))
            .run();
        assert_exit!(o, Some(0));
    };
    upkeep(&["forget", "--keep-last", "1"]);
    upkeep(&["prune"]);
    assert!(size() + (2 << 20) < before, "{before} -> {}", size());
    upkeep(&["verify"]);
    let new = restore_new(&t.path().join("new"), cfg);
    assert_eq!(std::fs::read(new.p("/srv/app/second.bin")).unwrap(), second);
    assert!(!new.p("/srv/app/first.bin").exists());
}

/// A TCP relay on loopback in front of the S3 server, slowed to `rate` bytes/s per
/// connection and direction so a transfer takes a while; `cut` drops every connection and
/// closes the port, `start` opens it again on the same port.
struct Relay {
    port: u16,
    target: u16,
    rate: u64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>>,
    acceptor: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    fn new(target: u16, rate: u64) -> Relay {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = Relay {
            port,
            target,
            rate,
            stop: Default::default(),
            open: Default::default(),
            acceptor: None,
        };
        r.start();
        r
    }

    fn start(&mut self) {
        use std::sync::atomic::Ordering;
        self.stop.store(false, Ordering::SeqCst);
        let listener = TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let (stop, open, target, rate) =
            (self.stop.clone(), self.open.clone(), self.target, self.rate);
        self.acceptor = Some(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let mut open = open.lock().unwrap();
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
                    std::thread::spawn(move || {
                        use std::io::{Read, Write};
                        let mut buf = vec![0u8; 16 << 10];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                            std::thread::sleep(Duration::from_micros(n as u64 * 1_000_000 / rate));
                        }
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
                open.push(client);
                open.push(server);
            }
        }));
    }

    /// Drops every connection and closes the port; returns how many were open.
    fn cut(&mut self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(a) = self.acceptor.take() {
            a.join().unwrap();
        }
        let mut open = self.open.lock().unwrap();
        for s in open.iter() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        let n = open.len() / 2;
        open.clear();
        n
    }
}

/// #18.5: the connection to the store dropped mid-transfer (the relay killed, then started
/// again a second later): capture and restore retry and complete, every byte in place.
#[test]
fn s3_transfers_survive_the_connection_dropping_mid_transfer() {
    let t = tempfile::tempdir().unwrap();
    let server = start(&t.path().join("s3"));
    let mut relay = Relay::new(server.port, 8 << 20);
    let old = old_tree(&t.path().join("old"), relay.port);
    // 4 connections at the relay's 8 MiB/s each: 48 MiB take long enough to be cut twice
    let cfg = old.p("/etc/carryover/config.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replacen("[data]", "connections = 4\n[data]", 1)).unwrap();
    let big: Vec<Vec<u8>> = (0..4).map(|i| noise(100 + i, 12 << 20)).collect();
    for (i, b) in big.iter().enumerate() {
        std::fs::write(old.p(&format!("/srv/app/blob{i}.bin")), b).unwrap();
    }
    let mut cut_twice = |cmd: Cmd| {
        let job = std::thread::spawn(move || cmd.envs(&env(SECRET)).run());
        std::thread::sleep(Duration::from_millis(1500));
        assert!(
            !job.is_finished(),
            "still transferring when the relay is cut"
        );
        let open = relay.cut();
        std::thread::sleep(Duration::from_millis(1000));
        relay.start();
        let o = job.join().unwrap();
        assert!(open > 0, "the relay was cut while transfers were running");
        o
    };
    let o = cut_twice(Cmd::new("capture").root(&old.dir));
    assert_exit!(o, Some(0));

    let cfg = old.p("/etc/carryover/config.toml");
    let new = Tree::new(&t.path().join("new"));
    new.file("/sys/class/dmi/id/product_uuid", &format!("{INSTANCE}\n"))
        .file("/etc/hostname", "fresh\n");
    let o = cut_twice(Cmd::new("restore").root(&new.dir).config(&cfg));
    assert_exit!(o, Some(0));
    for (i, b) in big.iter().enumerate() {
        let got = std::fs::read(new.p(&format!("/srv/app/blob{i}.bin"))).unwrap();
        assert!(got == *b, "blob{i}.bin restored byte for byte");
    }
}
