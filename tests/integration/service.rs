//! #17: the service environment comes back — the packages the user chose, third-party
//! repositories (checked against a loopback HTTP server standing in for the repository's
//! host), changed and added configuration with the new OS's version kept aside, and the
//! findings that name application files and databases on the system disk.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use crate::fixtures::*;

/// nginx's default nginx.conf on the old OS: its md5 is in the dpkg status below.
const NGINX_DEFAULT: &str = "user www-data;\nworker_processes auto;\n# the package default\n";
const NGINX_DEFAULT_MD5: &str = "5b03083890c9e9b946b58068af1a70f1";
const NGINX_MINE: &str = "user www-data;\nworker_processes 8;\n# tuned by the operator\n";
const NGINX_TRIXIE: &str = "user www-data;\nworker_processes auto;\n# trixie's default\n";
const SITE: &str = "server {\n  listen 80;\n  root /srv/site;\n}\n";
const TLS_KEY: &str =
    "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA\n-----END PRIVATE KEY-----\n";

/// An apt repository host on loopback: answers 200 for `dists/<suite>/InRelease` of the
/// suites it has, 404 for anything else.
fn repo_server(suites: &'static [&'static str]) -> u16 {
    serve_get(move |path| {
        if suites
            .iter()
            .any(|s| path == format!("/pgdg/dists/{s}/InRelease"))
        {
            ("200 OK", "-----BEGIN PGP SIGNED MESSAGE-----\n".into())
        } else {
            ("404 Not Found", String::new())
        }
    })
}

/// A Debian 12 server running nginx with a custom site, PostgreSQL and Redis, with the
/// PostgreSQL project's repository (served on `port`) and one whose host is gone.
fn old_service_host(dir: &std::path::Path, port: u16) -> Tree {
    let t = old_debian(dir);
    let status = format!(
        "Package: base-files\nStatus: install ok installed\nPriority: required\nEssential: yes\nVersion: 12.4\nArchitecture: amd64\n\n\
Package: nginx\nStatus: install ok installed\nPriority: optional\nVersion: 1.22.1-9\nArchitecture: amd64\n\n\
Package: nginx-common\nStatus: install ok installed\nPriority: optional\nVersion: 1.22.1-9\nArchitecture: all\nConffiles:\n /etc/nginx/nginx.conf {NGINX_DEFAULT_MD5}\n /etc/nginx/mime.types 0123456789abcdef0123456789abcdef obsolete\n\n\
Package: postgresql\nStatus: install ok installed\nPriority: optional\nVersion: 15+248\nArchitecture: all\n\n\
Package: postgresql-15\nStatus: install ok installed\nPriority: optional\nVersion: 15.6-0+deb12u1\nArchitecture: amd64\n\n\
Package: redis-server\nStatus: install ok installed\nPriority: optional\nVersion: 5:7.0.15-1\nArchitecture: amd64\n\n\
Package: libfoo1\nStatus: install ok installed\nPriority: optional\nVersion: 1.0\nArchitecture: amd64\n\n\
Package: mongodb-org\nStatus: install ok installed\nPriority: optional\nVersion: 7.0.5\nArchitecture: amd64\n\n\
Package: linux-image-amd64\nStatus: install ok installed\nPriority: optional\nVersion: 6.1.76-1\nArchitecture: amd64\n\n\
Package: removed-one\nStatus: deinstall ok config-files\n"
    );
    t.file("/etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n")
        .file("/var/lib/dpkg/status", &status)
        .file("/var/lib/apt/extended_states", "Package: nginx-common\nArchitecture: all\nAuto-Installed: 1\n\nPackage: postgresql-15\nArchitecture: amd64\nAuto-Installed: 1\n")
        .file("/var/lib/dpkg/info/nginx-common.list", "/etc\n/etc/nginx\n/etc/nginx/nginx.conf\n/etc/nginx/mime.types\n")
        .file("/var/lib/dpkg/info/base-files.list", "/etc/login.defs\n/etc/os-release\n")
        .file("/etc/nginx/nginx.conf", NGINX_MINE)
        .file("/etc/nginx/mime.types", "types {}\n")
        .file("/etc/nginx/sites-available/app", SITE)
        .link("/etc/nginx/sites-enabled/app", "../sites-available/app")
        .file("/etc/postgresql/15/main/postgresql.conf", "data_directory = '/var/lib/postgresql/15/main'\nport = 5432\n")
        // files ucf manages for a package: the unchanged one is the package's, not the user's
        .file("/etc/postgresql-common/createcluster.conf", "create_main_cluster = true\n")
        .file("/etc/postgresql-common/pg_upgradecluster.d/x.conf", "create_main_cluster = false\n")
        .file("/var/lib/ucf/hashfile", "e5a902f3dcc25d965c8abf35bc2ff5e1  /etc/postgresql-common/createcluster.conf\ne5a902f3dcc25d965c8abf35bc2ff5e1  /etc/postgresql-common/pg_upgradecluster.d/x.conf\n")
        .file("/etc/lvm/backup/datavg", "datavg {\n}\n")
        .file_mode("/etc/ssl/private/app.key", TLS_KEY, 0o600)
        .file("/etc/apt/sources.list", "deb http://deb.debian.org/debian bookworm main\ndeb http://deb.debian.org/debian-security bookworm-security main\n")
        .file("/etc/apt/sources.list.d/pgdg.list", &format!("deb [signed-by=/etc/apt/keyrings/pgdg.asc] http://127.0.0.1:{port}/pgdg bookworm-pgdg main\n"))
        .file("/etc/apt/sources.list.d/gone.list", "deb http://repo.gone.invalid/debian-extra bookworm extra\n")
        .file("/etc/apt/keyrings/pgdg.asc", "-----BEGIN PGP PUBLIC KEY BLOCK-----\npgdg\n-----END PGP PUBLIC KEY BLOCK-----\n")
        .file("/etc/apt/preferences.d/pgdg.pref", "Package: *\nPin: origin 127.0.0.1\nPin-Priority: 600\n");
    t
}

/// A Debian 13 image whose apt index offers nginx, PostgreSQL 17 and Redis; nginx's
/// default configuration is there (as its package would put it).
fn new_trixie(dir: &std::path::Path) -> Tree {
    let t = new_debian(dir);
    t.file("/etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"13\"\nVERSION_CODENAME=trixie\nID=debian\n")
        .file("/var/lib/apt/lists/deb.debian.org_debian_dists_trixie_main_binary-amd64_Packages",
            "Package: nginx\nVersion: 1.26.3-3\n\nPackage: postgresql\nVersion: 17+278\n\nPackage: postgresql-17\nVersion: 17.5-1\n\nPackage: redis-server\nVersion: 5:8.0.2-3\nProvides: redis\n\nPackage: openssh-server\nVersion: 1:10.0p1-7\n")
        .file("/etc/nginx/nginx.conf", NGINX_TRIXIE)
        .file("/etc/nginx/sites-available/default", "server { listen 80 default_server; }\n")
        .link("/etc/nginx/sites-enabled/default", "/etc/nginx/sites-available/default")
        .file("/etc/postgresql/17/main/postgresql.conf", "data_directory = '/var/lib/postgresql/17/main'\nport = 5432\n");
    t
}

fn md5_checks_out() {
    // the constant above is the md5 of the default; keep them in step
    let out = std::process::Command::new("md5sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin
                .take()
                .unwrap()
                .write_all(NGINX_DEFAULT.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let sum = String::from_utf8_lossy(&out.stdout);
    assert!(
        sum.starts_with(NGINX_DEFAULT_MD5),
        "md5 of the default is {sum}"
    );
}

#[test]
fn the_service_environment_is_captured_and_planned_on_the_new_os() {
    md5_checks_out();
    let port = repo_server(&["trixie-pgdg"]);
    let t = tempfile::tempdir().unwrap();
    let old = old_service_host(&t.path().join("old"), port);
    // what capture records: the user's packages, the third-party repositories, the
    // changed configuration (the private key's content never in the state)
    let o = Cmd::new("inspect").root(&old.dir).json().run();
    assert_exit!(o, Some(0));
    let v = json(&o);
    let chosen: Vec<&str> = v["packages"]["chosen"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        chosen,
        vec![
            "libfoo1",
            "mongodb-org",
            "nginx",
            "postgresql",
            "redis-server"
        ],
        "manual marks only: no auto, essential, required or kernel packages"
    );
    let repos = &v["repos"];
    assert_eq!(repos["codename"], "bookworm");
    let uris: Vec<&str> = repos["apt"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["uris"][0].as_str().unwrap())
        .collect();
    assert_eq!(
        uris,
        vec![
            "http://repo.gone.invalid/debian-extra",
            &format!("http://127.0.0.1:{port}/pgdg")
        ],
        "the distribution's own archives are left out"
    );
    assert_eq!(repos["keys"][0]["path"], "/etc/apt/keyrings/pgdg.asc");
    let configs: Vec<(String, bool)> = v["configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().to_string(),
                c["private"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    for want in [
        ("/etc/nginx/nginx.conf".to_string(), false),
        ("/etc/nginx/sites-available/app".to_string(), false),
        ("/etc/nginx/sites-enabled/app".to_string(), false),
        ("/etc/ssl/private/app.key".to_string(), true),
    ] {
        assert!(configs.contains(&want), "{want:?} in {configs:?}");
    }
    assert!(
        configs.contains(&(
            "/etc/postgresql-common/pg_upgradecluster.d/x.conf".into(),
            false
        )),
        "a ucf file that differs from ucf's checksum is carried: {configs:?}"
    );
    for not in [
        "/etc/postgresql-common/createcluster.conf",
        "/etc/lvm/backup/datavg",
        "/etc/nginx/mime.types",
        "/etc/login.defs",
        "/etc/hosts",
        "/etc/apt/sources.list",
    ] {
        assert!(
            !configs.iter().any(|(p, _)| p == not),
            "{not} is not carried as configuration"
        );
    }
    assert!(
        !stdout(&o).contains("MC4CAQAwBQYDK2VwBCIEIA"),
        "a private key is never in the state"
    );

    let store = t.path().join("store");
    capture(&old.dir, &store);
    let new = new_trixie(&t.path().join("new"));
    let plan = json(&restore(&new.dir, &store, &["--dry-run"], &[]));
    let p = step(&plan, "packages");
    let changes = p["changes"].to_string();
    for want in [
        "install nginx (old OS: 1.22.1-9)",
        "install postgresql (old OS: 15+248)",
        "install redis-server",
    ] {
        assert!(changes.contains(want), "{want} in {p}");
    }
    assert!(p["attention"].to_string().contains("mongodb-org"), "{p}");
    assert!(p["warnings"].to_string().contains("libfoo1"), "{p}");
    assert!(!changes.contains("linux-image"), "{p}");
    let r = step(&plan, "repositories");
    assert_eq!(r["status"], "would-change", "{r}");
    assert!(
        r["attention"].to_string().contains("repo.gone.invalid"),
        "{r}"
    );

    // the real run: the repository for trixie, its key and pin, the operator's files
    let real = json(&restore(&new.dir, &store, &[], &[]));
    assert_eq!(
        real["state"], "degraded",
        "mongodb-org is not offered: {real}"
    );
    let sources = new.read("/etc/apt/sources.list.d/carryover-pgdg.sources");
    assert_eq!(
        sources,
        format!(
            "Types: deb\nURIs: http://127.0.0.1:{port}/pgdg\nSuites: trixie-pgdg\nComponents: main\nSigned-By: /etc/apt/keyrings/pgdg.asc\n"
        )
    );
    assert!(
        !new.p("/etc/apt/sources.list.d/carryover-gone.sources")
            .exists()
    );
    assert!(new.read("/etc/apt/keyrings/pgdg.asc").contains("pgdg"));
    assert!(
        new.read("/etc/apt/preferences.d/pgdg.pref")
            .contains("Pin-Priority: 600")
    );
    assert_eq!(new.read("/etc/nginx/nginx.conf"), NGINX_MINE);
    assert_eq!(
        new.read("/etc/nginx/nginx.conf.carryover-new"),
        NGINX_TRIXIE
    );
    assert_eq!(new.read("/etc/nginx/sites-available/app"), SITE);
    assert_eq!(
        std::fs::read_link(new.p("/etc/nginx/sites-enabled/app")).unwrap(),
        std::path::Path::new("../sites-available/app")
    );
    // the old OS had nginx's default site disabled: so has the new one (the link kept
    // in the backup), its file stays
    assert!(
        std::fs::symlink_metadata(new.p("/etc/nginx/sites-enabled/default")).is_err(),
        "{}",
        step(&real, "config-files")
    );
    assert!(new.p("/etc/nginx/sites-available/default").exists());
    // PostgreSQL 15's cluster configuration is not written beside 17's: it would name a
    // cluster whose programs the new OS does not have
    assert!(!new.p("/etc/postgresql/15").exists());
    assert!(
        step(&real, "config-files")["warnings"]
            .to_string()
            .contains("/etc/postgresql/15/ not carried: the configuration of a release the new OS does not have (it has /etc/postgresql/17/)"),
        "{}",
        step(&real, "config-files")
    );
    assert!(
        step(&real, "config-files")["changes"].to_string().contains(
            "/etc/nginx/sites-enabled/default → /etc/nginx/sites-available/default removed"
        ),
        "{}",
        step(&real, "config-files")
    );
    assert_eq!(new.read("/etc/ssl/private/app.key"), TLS_KEY);
    let mode = std::fs::metadata(new.p("/etc/ssl/private/app.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // a second run changes nothing more
    let again = json(&restore(&new.dir, &store, &["--snapshot", "latest"], &[]));
    for s in ["repositories", "config-files"] {
        assert_eq!(
            step(&again, s)["status"],
            "unchanged",
            "{}",
            step(&again, s)
        );
    }
}

#[test]
fn report_mode_only_names_the_packages() {
    let port = repo_server(&[]);
    let t = tempfile::tempdir().unwrap();
    let old = old_service_host(&t.path().join("old"), port);
    let store = t.path().join("store");
    capture(&old.dir, &store);
    let new = new_trixie(&t.path().join("new"));
    new.file(
        "/etc/carryover/config.toml",
        "[restore]\npackages = \"report\"\n",
    );
    let v = json(&restore(&new.dir, &store, &["--dry-run"], &[]));
    let p = step(&v, "packages");
    assert_eq!(p["status"], "unchanged", "{p}");
    assert!(
        p["attention"]
            .to_string()
            .contains("packages to install by hand: nginx postgresql redis-server"),
        "{p}"
    );
    // a repository that has no suite for the new release is named, not written
    let r = step(&v, "repositories");
    assert!(
        r["attention"]
            .to_string()
            .contains("trixie-pgdg/InRelease does not exist"),
        "{r}"
    );
}

#[test]
fn app_files_and_databases_on_the_system_disk_are_found() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    old.file("/opt/app/bin/app", "#!/bin/sh\n")
        .file("/opt/app/lib/app.jar", &"x".repeat(5000))
        .file("/var/lib/postgresql/15/main/PG_VERSION", "15\n")
        .file("/var/lib/postgresql/15/main/base/1/PG_VERSION", "15\n")
        .file("/var/lib/dpkg/info/nginx.list", "/usr/local\n");
    let o = Cmd::new("check").root(&old.dir).json().run();
    let v = json(&o);
    let f = v["findings"].as_array().unwrap();
    let app = f
        .iter()
        .find(|x| {
            x["key"] == "app-files-on-system-disk" && x["message"].to_string().contains("/opt")
        })
        .unwrap_or_else(|| panic!("no app-files finding for /opt: {v}"));
    assert_eq!(app["severity"], "warning");
    assert!(
        app["remediation"].to_string().contains("--path /opt"),
        "{app}"
    );
    let db = f
        .iter()
        .find(|x| x["key"] == "database-on-system-disk")
        .unwrap_or_else(|| panic!("no database finding: {v}"));
    assert_eq!(db["severity"], "blocker");
    assert!(
        db["message"]
            .to_string()
            .contains("/var/lib/postgresql/15/main"),
        "{db}"
    );
    assert_exit!(o, Some(3));
    // captured with the example hook: no longer a blocker
    old.file_mode(
        "/etc/carryover/hooks/pre-capture.d/10-postgresql-dump",
        "#!/bin/sh\nexit 0\n",
        0o755,
    );
    let o = Cmd::new("check")
        .root(&old.dir)
        .args(&["--path", "/var/lib/postgresql"])
        .json()
        .run();
    let v = json(&o);
    let db = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["key"] == "database-on-system-disk")
        .cloned()
        .unwrap();
    assert_eq!(db["severity"], "info", "{db}");
}

/// The operator's hooks live under /etc/carryover on the system disk the Change OS
/// replaces: the config-files step brings them to the new OS (root's, never writable by
/// group or others), where the post-restore hook runs after the steps of the same restore
/// — the database dump is loaded by it. carryover's other files there are not carried.
#[test]
fn the_operators_hooks_come_to_the_new_os_and_the_post_restore_one_runs() {
    use std::os::unix::fs::MetadataExt;
    let port = repo_server(&[]);
    let t = tempfile::tempdir().unwrap();
    let old = old_service_host(&t.path().join("old"), port);
    let load = "/etc/carryover/hooks/post-restore.d/90-postgresql-load";
    old.file_mode(
        "/etc/carryover/hooks/pre-capture.d/10-postgresql-dump",
        "#!/bin/sh\nexit 0\n",
        0o755,
    )
    .file_mode(
        load,
        "#!/bin/sh\necho \"$CARRYOVER_PHASE $CARRYOVER_SNAPSHOT_ID\" > \"$CARRYOVER_ROOT/loaded\"\n",
        0o775,
    )
    .file_mode(
        "/etc/carryover/config.d/10-old.toml",
        "[report]\nurl = \"http://old.example\"\n",
        0o600,
    );
    std::os::unix::fs::chown(old.p(load), Some(1000), Some(1000)).unwrap();
    let store = t.path().join("store");
    let id = capture(&old.dir, &store);
    let new = new_trixie(&t.path().join("new"));
    let v = json(&restore(&new.dir, &store, &[], &[]));
    let c = step(&v, "config-files")["changes"].to_string();
    assert!(c.contains(load), "{v}");
    let m = std::fs::metadata(new.p(load)).unwrap();
    assert_eq!(
        (m.mode() & 0o7777, m.uid(), m.gid()),
        (0o755, 0, 0),
        "root's, not writable by its group (captured 0775, uid 1000)"
    );
    assert!(
        new.p("/etc/carryover/hooks/pre-capture.d/10-postgresql-dump")
            .exists(),
        "the next capture on the new OS dumps the database too"
    );
    assert!(!new.p("/etc/carryover/config.d/10-old.toml").exists());
    assert_eq!(step(&v, "post-restore-hooks")["status"], "changed", "{v}");
    assert_eq!(new.read("/loaded"), format!("post-restore {id}\n"));
}

/// The README's recipe: the example dump hook in pre-capture.d and its folder in
/// `[data] paths`. Before the first capture the folder does not exist — the hook makes it
/// — so the preflight only warns, and capture checks again after the hooks ran: the dump
/// is in the snapshot; a folder still missing then blocks the capture.
#[test]
fn a_data_path_made_by_a_pre_capture_hook_is_captured() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    let store = t.path().join("store");
    let dump = "/etc/carryover/hooks/pre-capture.d/10-postgresql-dump";
    let capture = || {
        Cmd::new("capture")
            .root(&old.dir)
            .store(&store)
            .args(&["--path", "/var/backups/carryover-db"])
            .json()
            .run()
    };
    // a hook that makes nothing: blocked after it ran
    old.file_mode(dump, "#!/bin/sh\nexit 0\n", 0o755);
    let o = capture();
    assert_exit!(o, Some(3));
    assert!(
        stderr(&o)
            .contains("/var/backups/carryover-db still missing after the pre-capture hooks ran"),
        "{}",
        stderr(&o)
    );
    let o = Cmd::new("check")
        .root(&old.dir)
        .args(&["--path", "/var/backups/carryover-db"])
        .json()
        .run();
    let v = json(&o);
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "data-path-missing")
        .cloned()
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(f["severity"], "warning", "{f}");
    // the hook as the example's: it makes the folder and the dump
    old.file_mode(
        dump,
        "#!/bin/sh\nset -e\nd=\"$CARRYOVER_ROOT/var/backups/carryover-db\"\nmkdir -p \"$d\"\necho 'CREATE TABLE notes;' > \"$d/postgresql.sql\"\n",
        0o755,
    );
    let o = capture();
    assert_exit!(o, Some(0));
    let new = new_debian(&t.path().join("new"));
    restore(&new.dir, &store, &[], &[]);
    assert_eq!(
        new.read("/var/backups/carryover-db/postgresql.sql"),
        "CREATE TABLE notes;\n"
    );
}
