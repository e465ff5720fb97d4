//! #17: the service environment comes back — the packages the user chose, third-party
//! repositories (checked against a loopback HTTP server standing in for the repository's
//! host), changed and added configuration with the new OS's version kept aside, and the
//! findings that name application files and databases on the system disk.

use std::io::Write;
use std::os::unix::fs::FileTypeExt;

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
        .file("/var/lib/dpkg/info/nginx.list", "/usr\n/usr/sbin\n/usr/sbin/nginx\n/usr/share/doc/nginx/copyright\n")
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
    // with the programs each installed, for `dnf provides` on a new OS of another family
    assert_eq!(
        v["packages"]["chosen"][2]["programs"],
        serde_json::json!(["/usr/sbin/nginx"])
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
            .contains("configuration of another version held back (the new OS has another version of the program; compare by hand — the files are in the snapshot): /etc/postgresql/15"),
        "{}",
        step(&real, "config-files")
    );
    assert!(
        step(&real, "config-files")["changes"]
            .to_string()
            .contains("/etc/nginx/sites-enabled/default: removed (kept in the backup folder)"),
        "{}",
        step(&real, "config-files")
    );
    assert_eq!(new.read("/etc/ssl/private/app.key"), TLS_KEY);
    // the package's default site, which the operator had removed, stays removed
    assert!(std::fs::symlink_metadata(new.p("/etc/nginx/sites-enabled/default")).is_err());
    assert!(
        step(&real, "config-files")["warnings"]
            .to_string()
            .contains("/etc/nginx/sites-enabled/default"),
        "{}",
        step(&real, "config-files")
    );
    assert_eq!(new.mode("/etc/ssl/private/app.key"), 0o600);
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
    // a hook whose name merely contains "pg" (upgrade) is not a database's
    old.file_mode(
        "/etc/carryover/hooks/pre-capture.d/05-upgrade-notes",
        "#!/bin/sh\nexit 0\n",
        0o755,
    );
    let db_finding = |args: &[&str]| {
        let v = json(&Cmd::new("check").root(&old.dir).args(args).json().run());
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["key"] == "database-on-system-disk")
            .cloned()
            .unwrap_or_else(|| panic!("{v}"))
    };
    assert_eq!(db_finding(&[])["severity"], "blocker");
    // the example hook, but its dump folder not captured: still lost with the disk
    old.file_mode(
        "/etc/carryover/hooks/pre-capture.d/10-postgresql-dump",
        "#!/bin/sh\nexit 0\n",
        0o755,
    );
    let f = db_finding(&["--path", "/var/lib/postgresql"]);
    assert_eq!(f["severity"], "blocker", "{f}");
    assert!(
        f["remediation"]
            .to_string()
            .contains("/var/backups/carryover-db"),
        "{f}"
    );
    // with it (made by the hook at capture: not missing now)
    let v = json(
        &Cmd::new("check")
            .root(&old.dir)
            .args(&["--path", "/var/backups/carryover-db"])
            .json()
            .run(),
    );
    let keys: Vec<(&str, &str)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["key"].as_str().unwrap(), f["severity"].as_str().unwrap()))
        .collect();
    assert!(
        keys.contains(&("database-on-system-disk", "info")),
        "{keys:?}"
    );
    // the dump folder does not exist before the hook made it: a warning, not a blocker
    // (capture checks again after the hooks)
    assert!(
        !keys.contains(&("data-path-missing", "blocker")),
        "{keys:?}"
    );
}

/// Installs empty rpm packages of these names into the tree's rpm database (made with
/// the real rpmbuild and rpm, as the .rpm packaging does); `name>other` also provides
/// `other`.
fn rpm_db(t: &Tree, given: &[&str]) {
    let work = t.p("/tmp/rpmbuild");
    std::fs::create_dir_all(&work).unwrap();
    let spec = work.join("p.spec");
    std::fs::write(
        &spec,
        "Name: %{pkg}\nVersion: 1.0\nRelease: 1.el9\nSummary: t\nLicense: MIT\nBuildArch: noarch\n%{?prov:Provides: %{prov}}\n%description\nt\n%files\n",
    )
    .unwrap();
    let top = work.join("top");
    let names: Vec<&str> = given.iter().map(|n| n.split('>').next().unwrap()).collect();
    for (n, full) in names.iter().zip(given) {
        let mut build = std::process::Command::new("rpmbuild");
        if let Some((_, prov)) = full.split_once('>') {
            build.args(["--define", &format!("prov {prov}")]);
        }
        let o = build
            .args(["-bb", "--quiet", "--define"])
            .arg(format!("_topdir {}", top.display()))
            .args(["--define", &format!("pkg {n}")])
            .arg(&spec)
            .output()
            .expect("rpmbuild (Debian's rpm package)");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    std::fs::create_dir_all(t.p("/var/lib/rpm")).unwrap();
    let root = t.dir.to_str().unwrap();
    let rpm = |args: &[&str]| {
        let o = std::process::Command::new("rpm")
            .args(["--root", root, "--dbpath", "/var/lib/rpm"])
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    rpm(&["--initdb"]);
    let pkgs: Vec<String> = names
        .iter()
        .map(|n| format!("{}/RPMS/noarch/{n}-1.0-1.el9.noarch.rpm", top.display()))
        .collect();
    let mut args = vec!["-i", "--nodeps", "--noscripts", "--justdb"];
    args.extend(pkgs.iter().map(String::as_str));
    rpm(&args);
    std::fs::remove_dir_all(&work).unwrap();
}

/// Captures a Rocky tree into `store` (its `lvm-vg-spans-system-disk` finding acknowledged).
fn capture_rocky(old: &Tree, store: &std::path::Path) {
    let o = Cmd::new("capture")
        .root(&old.dir)
        .store(store)
        .args(&["--ack", "lvm-vg-spans-system-disk"])
        .run();
    assert_exit!(o, Some(0));
}

#[test]
fn a_rocky_server_s_packages_map_onto_debian_names() {
    let t = tempfile::tempdir().unwrap();
    let old = old_rocky(&t.path().join("old"));
    rpm_db(
        &old,
        &[
            "httpd",
            "cronie",
            "redis",
            "mongodb-org",
            "apr",
            "kernel-core",
        ],
    );
    // dnf5's record of what the user installed (apr came as a dependency)
    old.file(
        "/usr/lib/sysimage/libdnf5/packages.toml",
        "version = \"1.0\"\n[packages]\n\"httpd-1.0-1.el9.noarch\" = { reason = \"User\" }\n\"cronie-1.0-1.el9.noarch\" = { reason = \"User\" }\n\"redis-1.0-1.el9.noarch\" = { reason = \"User\" }\n\"mongodb-org-1.0-1.el9.noarch\" = { reason = \"User\" }\n\"kernel-core-1.0-1.el9.noarch\" = { reason = \"User\" }\n\"apr-1.0-1.el9.noarch\" = { reason = \"Dependency\" }\n",
    );
    let o = Cmd::new("inspect").root(&old.dir).json().run();
    assert_exit!(o, Some(0));
    let v = json(&o);
    assert_eq!(v["packages"]["manager"], "rpm", "{}", v["packages"]);
    let chosen: Vec<&str> = v["packages"]["chosen"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", v["packages"]))
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(chosen, vec!["cronie", "httpd", "mongodb-org", "redis"]);
    let store = t.path().join("store");
    capture_rocky(&old, &store);
    let new = new_trixie(&t.path().join("new"));
    new.file(
        "/var/lib/apt/lists/deb.debian.org_debian_dists_trixie_main_binary-amd64_Packages",
        "Package: apache2\nVersion: 2.4.65-2\n\nPackage: cron\nVersion: 3.0pl1-197\n\nPackage: redis\nVersion: 5:8.0.2-3\n",
    );
    let v = json(&restore(&new.dir, &store, &["--dry-run"], &[]));
    let p = step(&v, "packages");
    let changes = p["changes"].to_string();
    for want in [
        "install apache2 for httpd (old OS: 1.0-1.el9)",
        "install cron for cronie",
        "install redis (old OS: 1.0-1.el9)",
    ] {
        assert!(changes.contains(want), "{want} in {p}");
    }
    assert!(
        p["attention"].to_string().contains("mongodb-org"),
        "what the new OS does not offer is listed: {p}"
    );
    assert!(!changes.contains("kernel"), "{p}");
}

/// A Rocky os-release of `version`.
fn rocky_os_release(version: &str) -> String {
    format!(
        "NAME=\"Rocky Linux\"\nVERSION_ID=\"{version}\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n"
    )
}

/// A new Rocky 9.4 tree with dnf, an rpm database and an empty `yum.repos.d`.
fn new_rocky_9_with_dnf(dir: &std::path::Path) -> Tree {
    let new = new_rocky(dir);
    new.file("/etc/os-release", &rocky_os_release("9.4"))
        .file("/usr/bin/dnf", "")
        .dir("/var/lib/rpm")
        .dir("/etc/yum.repos.d");
    new
}

/// #17 2: a Rocky 8 server's `.repo` files onto Rocky 9 — each section's `$releasever` and
/// `$basearch` given the new OS's values, a hard-coded `centos/8` renamed, and written only
/// when its `repodata/repomd.xml` answers on the loopback host standing in for the
/// repository's; a repository that has no build for the new release is named, not written.
/// Onto Debian the same files are named, not written.
#[test]
fn a_rocky_server_s_repositories_follow_the_new_release() {
    let arch = elf_arch(&agent_bin());
    let port = serve_get(move |path| {
        let there = [
            format!("/app/el/9/{arch}/repodata/repomd.xml"),
            format!("/packages/centos/9/{arch}/repodata/repomd.xml"),
            // the legacy repository has a build for the old release only
            "/legacy/8/repodata/repomd.xml".to_string(),
            format!("/app-source/el/8/{arch}/repodata/repomd.xml"),
        ];
        if there.iter().any(|p| p == path) {
            ("200 OK", "<repomd/>\n".into())
        } else {
            ("404 Not Found", String::new())
        }
    });
    let t = tempfile::tempdir().unwrap();
    let old = old_rocky(&t.path().join("old"));
    let app = format!(
        "# the app's repositories\n[app]\nname=App for EL $releasever\nbaseurl=http://127.0.0.1:{port}/app/el/$releasever/$basearch/\ngpgcheck=1\ngpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-app\n\n[app-source]\nname=App sources\nbaseurl=http://127.0.0.1:{port}/app-source/el/$releasever/$basearch/\nenabled=0\n"
    );
    old.file("/etc/os-release", &rocky_os_release("8.9"))
    .file("/etc/yum.repos.d/app.repo", &app)
    .file(
        "/etc/yum.repos.d/legacy.repo",
        &format!("[legacy]\nbaseurl=http://127.0.0.1:{port}/legacy/$releasever/\n"),
    )
    .file(
        "/etc/yum.repos.d/nginx.repo",
        &format!("[nginx-stable]\nname=nginx stable\nbaseurl=http://127.0.0.1:{port}/packages/centos/8/$basearch/\ngpgkey=https://nginx.org/keys/nginx_signing.key\n"),
    )
    .file(
        "/etc/pki/rpm-gpg/RPM-GPG-KEY-app",
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\napp\n-----END PGP PUBLIC KEY BLOCK-----\n",
    );
    let store = t.path().join("store");
    capture_rocky(&old, &store);
    let new = new_rocky_9_with_dnf(&t.path().join("new"));
    let named = |r: &serde_json::Value, what: &str| {
        r["attention"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().contains(what))
    };
    // the plan fetches the indexes too, and says what it would write
    let plan = json(&restore(&new.dir, &store, &["--dry-run"], &[]));
    let r = step(&plan, "repositories");
    assert_eq!(r["status"], "would-change", "{r}");
    assert!(
        named(r, "/legacy/9/repodata/repomd.xml does not exist"),
        "{r}"
    );
    assert!(!new.p("/etc/yum.repos.d/app.repo").exists());

    let v = json(&restore(&new.dir, &store, &[], &[]));
    let r = step(&v, "repositories");
    assert_eq!(r["status"], "changed", "{r}");
    assert_eq!(
        new.read("/etc/yum.repos.d/app.repo"),
        // the sources section is off: written (brought to the release) without a check
        format!(
            "# the app's repositories\n[app]\nname=App for EL $releasever\nbaseurl=http://127.0.0.1:{port}/app/el/9/{arch}/\ngpgcheck=1\ngpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-app\n\n[app-source]\nname=App sources\nbaseurl=http://127.0.0.1:{port}/app-source/el/9/{arch}/\nenabled=0\n"
        ),
        "{r}"
    );
    assert_eq!(
        new.read("/etc/yum.repos.d/nginx.repo"),
        format!(
            "[nginx-stable]\nname=nginx stable\nbaseurl=http://127.0.0.1:{port}/packages/centos/9/{arch}/\ngpgkey=https://nginx.org/keys/nginx_signing.key\n"
        ),
    );
    assert!(
        !new.p("/etc/yum.repos.d/legacy.repo").exists(),
        "no build for the new release: not written"
    );
    assert!(
        named(
            r,
            &format!(
                "the repository [legacy] of /etc/yum.repos.d/legacy.repo is not carried: http://127.0.0.1:{port}/legacy/9/repodata/repomd.xml does not exist"
            )
        ),
        "{r}"
    );
    assert!(
        !named(r, "[app-source]"),
        "a section that is off needs nobody: {r}"
    );
    assert!(new.read("/etc/pki/rpm-gpg/RPM-GPG-KEY-app").contains("app"));
    assert_eq!(new.mode("/etc/yum.repos.d/app.repo"), 0o644);
    // a second run changes nothing more
    let again = json(&restore(&new.dir, &store, &["--snapshot", "latest"], &[]));
    assert_eq!(
        step(&again, "repositories")["status"],
        "unchanged",
        "{again}"
    );

    // onto Debian: named, not written
    let deb = new_trixie(&t.path().join("deb"));
    let v = json(&restore(&deb.dir, &store, &[], &[]));
    let r = step(&v, "repositories");
    assert!(
        named(
            r,
            "the yum repository file /etc/yum.repos.d/app.repo is not carried: the new OS does not use dnf, yum or zypper"
        ),
        "{r}"
    );
    assert!(!deb.p("/etc/yum.repos.d").exists(), "{r}");
}

/// The review of the `.repo` half (M3, M4, M5, L10, L11): comma-separated mirrors each
/// checked and written, an EPEL key named for the old release renamed like its URLs, a
/// section that is off, one behind credentials (401) and one behind a proxy written
/// without ending the restore `degraded`, a redirect to another host not followed, and a
/// section that switches signature checks off refused and named.
#[test]
fn unusual_rocky_repositories_are_carried_and_unsigned_ones_refused() {
    use std::sync::{Arc, Mutex};
    let arch = elf_arch(&agent_bin());
    let hits: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = hits.clone();
    let port = serve_get(move |path| {
        seen.lock().unwrap().push(path.to_string());
        let there = [
            format!("/epel/9/Everything/{arch}/repodata/repomd.xml"),
            format!("/mirror/epel/9/{arch}/repodata/repomd.xml"),
        ];
        if there.iter().any(|p| p == path) {
            ("200 OK", "<repomd/>\n".into())
        } else if path == "/private/el/9/repodata/repomd.xml" {
            ("401 Unauthorized", String::new())
        } else if path == "/moved/el/9/repodata/repomd.xml" {
            // the header rides on the status line: serve_get writes no other
            (
                "302 Found\r\nLocation: http://elsewhere.invalid/repodata/repomd.xml",
                String::new(),
            )
        } else {
            ("404 Not Found", String::new())
        }
    });
    let t = tempfile::tempdir().unwrap();
    let old = old_rocky(&t.path().join("old"));
    let h = format!("http://127.0.0.1:{port}");
    old.file("/etc/os-release", &rocky_os_release("8.9"))
    .file(
        "/etc/yum.repos.d/epel.repo",
        &format!("[epel]\nbaseurl={h}/epel/$releasever/Everything/$basearch/,{h}/mirror/epel/$releasever/$basearch/\ngpgcheck=1\ngpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-EPEL-8\n\n[epel-debuginfo]\nbaseurl={h}/epel/$releasever/debug/$basearch/\nenabled=0\ngpgcheck=1\n"),
    )
    .file(
        "/etc/yum.repos.d/vendor.repo",
        &format!("[private]\nbaseurl={h}/private/el/$releasever/\nusername=u\npassword=p\n\n[unsigned]\nbaseurl={h}/epel/$releasever/Everything/$basearch/\ngpgcheck=0\n\n[proxied]\nbaseurl=http://repo.invalid/el/$releasever/\nproxy={h}/\n\n[moved]\nbaseurl={h}/moved/el/$releasever/\n"),
    )
    .file(
        "/etc/pki/rpm-gpg/RPM-GPG-KEY-EPEL-8",
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\nepel 8\n-----END PGP PUBLIC KEY BLOCK-----\n",
    );
    let store = t.path().join("store");
    capture_rocky(&old, &store);
    let new = new_rocky_9_with_dnf(&t.path().join("new"));
    // epel-release of the new OS brought its key
    new.file(
        "/etc/pki/rpm-gpg/RPM-GPG-KEY-EPEL-9",
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\nepel 9\n-----END PGP PUBLIC KEY BLOCK-----\n",
    );
    let v = json(&restore(&new.dir, &store, &[], &[]));
    let r = step(&v, "repositories");
    assert_eq!(r["status"], "changed", "{r}");
    assert_eq!(
        new.read("/etc/yum.repos.d/epel.repo"),
        format!(
            "[epel]\nbaseurl={h}/epel/9/Everything/{arch}/ {h}/mirror/epel/9/{arch}/\ngpgcheck=1\ngpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-EPEL-9\n\n[epel-debuginfo]\nbaseurl={h}/epel/9/debug/{arch}/\nenabled=0\ngpgcheck=1\n"
        ),
        "{r}"
    );
    assert!(
        !new.p("/etc/pki/rpm-gpg/RPM-GPG-KEY-EPEL-8").exists(),
        "{r}"
    );
    assert_eq!(
        new.read("/etc/yum.repos.d/vendor.repo"),
        format!(
            "[private]\nbaseurl={h}/private/el/9/\nusername=u\npassword=p\n\n[proxied]\nbaseurl=http://repo.invalid/el/9/\nproxy={h}/\n\n[moved]\nbaseurl={h}/moved/el/9/\n"
        ),
        "{r}"
    );
    // the one thing a person must look at: the section that turns signatures off
    let attention: Vec<&str> = r["attention"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        attention,
        vec![
            "the repository [unsigned] of /etc/yum.repos.d/vendor.repo is not carried: gpgcheck=0 would turn a signature or certificate check off"
        ],
        "{r}"
    );
    assert!(
        r["warnings"].to_string().contains("[proxied]")
            && r["warnings"].to_string().contains("written unchecked"),
        "{r}"
    );
    // nothing went to the proxy, nothing followed the redirect
    let hits = hits.lock().unwrap();
    assert!(
        hits.iter()
            .all(|p| !p.contains("elsewhere") && !p.starts_with("http")),
        "{hits:?}"
    );
}

/// #17 from an attacker's side (a plain store is root-equivalent, but every field keeps
/// to its grammar and every write to its place): writes through a planted link, links
/// read through, keyrings of the new OS, apt options that turn checks off, package names
/// that are options, configuration of another version.
#[test]
fn hostile_service_state_is_refused_field_by_field() {
    let port = repo_server(&["trixie-pgdg", "trixie"]);
    let t = tempfile::tempdir().unwrap();
    let old = old_service_host(&t.path().join("old"), port);
    old.file(
        "/etc/postgresql/15/main/postgresql.conf",
        "shared_buffers = 1GB\n",
    );
    let store = t.path().join("store");
    let id = capture(&old.dir, &store);
    let cfg = |path: &str, content: &str| {
        serde_json::json!({"path": path, "mode": 0o644, "owner": "root", "group": "root",
            "content": base64_of(content)})
    };
    tamper(
        &store,
        &id,
        |v| {
            let configs = v["configs"].as_array_mut().unwrap();
            // 1. a link into /root, then a file "below" it; a file below a link the new
            // OS has (/etc/xdg/systemd/user → /etc/systemd/user, a place of another step)
            configs.push(
                serde_json::json!({"path": "/etc/evil", "mode": 0o777, "owner": "root",
                "group": "root", "link": "../root/.ssh"}),
            );
            configs.push(cfg(
                "/etc/evil/authorized_keys",
                "ssh-ed25519 AAAA attacker\n",
            ));
            configs.push(cfg(
                "/etc/xdg/systemd/user/default.target.wants/pwn.service",
                "[Service]\nExecStart=/tmp/pwn\n",
            ));
            // 2. a file whose new-OS version is a link to /etc/shadow: never read through
            configs.push(cfg("/etc/leak", "x\n"));
            let apt = v["repos"]["apt"].as_array_mut().unwrap();
            // 3. trusted=yes, a key over the distribution's keyring
            let mut trusted = apt[1].clone();
            trusted["file"] = "/etc/apt/sources.list.d/trusted.list".into();
            trusted["options"] = serde_json::json!([["trusted", "yes"]]);
            apt.push(trusted);
            let mut over = apt[1].clone();
            over["file"] = "/etc/apt/sources.list.d/over.list".into();
            over["signed_by"] = "/usr/share/keyrings/debian-archive-keyring.gpg".into();
            apt.push(over);
            v["repos"]["keys"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({
                "path": "/usr/share/keyrings/debian-archive-keyring.gpg", "mode": 0o644,
                "owner": "root", "group": "root", "content": base64_of("old keys\n")}));
            // 4. package names that are apt options or removals
            let chosen = v["packages"]["chosen"].as_array_mut().unwrap();
            for n in ["--allow-unauthenticated", "openssh-server-", "-o"] {
                chosen.push(serde_json::json!({"name": n, "version": "1", "arch": "all"}));
            }
        },
        true,
    );
    let new = new_trixie(&t.path().join("new"));
    new.file(
        "/usr/share/keyrings/debian-archive-keyring.gpg",
        "trixie keys\n",
    )
    .link("/etc/leak", "/etc/shadow")
    .dir("/root/.ssh")
    .dir("/etc/systemd/user")
    .link("/etc/xdg/systemd/user", "../../systemd/user");
    let v = json(&restore(&new.dir, &store, &[], &[]));
    let c = step(&v, "config-files");
    assert!(
        !new.p("/root/.ssh/authorized_keys").exists(),
        "nothing is written through a link: {c}"
    );
    assert!(
        !new.p("/etc/systemd/user/default.target.wants/pwn.service")
            .exists(),
        "nothing is written through the new OS's links: {c}"
    );
    assert!(
        c["failed_files"]
            .to_string()
            .contains("/etc/xdg/systemd/user/default.target.wants/pwn.service"),
        "{c}"
    );
    // the new OS's /etc/leak (a link to shadow) was not read into an aside file
    assert!(!new.p("/etc/leak.carryover-new").exists(), "{c}");
    assert!(!c.to_string().contains("root:*"), "{c}");
    // another version's configuration is held back, named
    assert!(!new.p("/etc/postgresql/15/main/postgresql.conf").exists());
    assert!(
        c["warnings"].to_string().contains("/etc/postgresql/15"),
        "{c}"
    );
    let r = step(&v, "repositories");
    assert!(r["attention"].to_string().contains("'trusted'"), "{r}");
    assert!(
        !new.p("/etc/apt/sources.list.d/carryover-trusted.sources")
            .exists()
    );
    assert_eq!(
        new.read("/usr/share/keyrings/debian-archive-keyring.gpg"),
        "trixie keys\n",
        "a keyring of the new OS is never replaced: {r}"
    );
    let p = step(&v, "packages");
    let text = p.to_string();
    assert!(
        text.contains("--allow-unauthenticated (not a package name)"),
        "{p}"
    );
    assert!(text.contains("openssh-server- (not a package name)"), "{p}");
    assert!(!p["changes"].to_string().contains("install -o"), "{p}");
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// #19.1 and #19.8: the restore leaves its report under /var/log/carryover (text, JSON,
/// the latest and per snapshot) and a login banner while degraded; `report --html` makes
/// a page of it that a real browser (Debian's chromium, headless) renders.
#[test]
fn the_restore_report_is_on_disk_and_renders_in_a_browser() {
    let port = repo_server(&["trixie-pgdg"]);
    let t = tempfile::tempdir().unwrap();
    let old = old_service_host(&t.path().join("old"), port);
    let store = t.path().join("store");
    let id = capture(&old.dir, &store);
    let new = new_trixie(&t.path().join("new"));
    let v = json(&restore(&new.dir, &store, &[], &[]));
    assert_eq!(v["state"], "degraded");
    let txt = new.read("/var/log/carryover/restore-report.txt");
    assert!(txt.contains("result    DEGRADED"), "{txt}");
    assert!(txt.contains("mongodb-org"), "the reason is named: {txt}");
    assert!(txt.contains("/etc/hostname: "), "old → new values: {txt}");
    assert_eq!(
        new.read(&format!("/var/log/carryover/restore-{id}.txt")),
        txt
    );
    let doc: serde_json::Value =
        serde_json::from_str(&new.read("/var/log/carryover/restore-report.json")).unwrap();
    assert_eq!(doc["state"], "degraded");
    assert!(!doc["reasons"].as_array().unwrap().is_empty());
    assert_eq!(
        new.mode("/var/log/carryover/restore-report.json"),
        0o600,
        "root-only"
    );
    assert!(new.read("/etc/motd.d/50-carryover").contains("DEGRADED"));

    let page = t.path().join("report.html");
    let o = Cmd::new("report")
        .root(&new.dir)
        .arg("--html")
        .arg(&page)
        .run();
    assert_exit!(o, Some(0));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("id=\"state\">DEGRADED<"), "{html}");
    let o = Cmd::new("report")
        .root(&new.dir)
        .arg("--html")
        .arg(&page)
        .json()
        .run();
    assert_exit!(o, Some(0));
    assert_eq!(json(&o)["html"], page.display().to_string());
    // `-` is standard output; a file that is not a page (or a link, a device) is never
    // replaced
    let o = Cmd::new("report --html -").root(&new.dir).run();
    assert_exit!(o, Some(0));
    assert!(stdout(&o).starts_with("<!DOCTYPE html>"));
    let passwd = t.path().join("passwd");
    std::fs::write(&passwd, "root:x:0:0::/root:/bin/sh\n").unwrap();
    let link = t.path().join("link.html");
    std::os::unix::fs::symlink(&page, &link).unwrap();
    for target in [&passwd, &link, &std::path::PathBuf::from("/dev/null")] {
        let o = Cmd::new("report --html").arg(target).root(&new.dir).run();
        assert_exit!(o, Some(2));
        assert!(stderr(&o).contains("nothing replaced"), "{}", stderr(&o));
    }
    assert_eq!(
        std::fs::read_to_string(&passwd).unwrap(),
        "root:x:0:0::/root:/bin/sh\n"
    );
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );
    // a real browser: the DOM it built, and a screenshot of the page
    let profile = tempfile::tempdir().unwrap();
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ];
    let url = format!("file://{}", page.display());
    let dom = std::process::Command::new("chromium")
        .args(flags)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", &url])
        .output()
        .expect("chromium (Debian's package; .ci/run installs it)");
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("DEGRADED") && dom.contains("mongodb-org"),
        "{dom}"
    );
    let shot = t.path().join("report.png");
    let o = std::process::Command::new("chromium")
        .args(flags)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", shot.display()))
        .args(["--window-size=1200,1600", &url])
        .output()
        .unwrap();
    let png = std::fs::read(&shot)
        .unwrap_or_else(|_| panic!("no screenshot: {}", String::from_utf8_lossy(&o.stderr)));
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    if let Ok(dir) = std::env::var("CARRYOVER_TEST_ARTIFACTS") {
        let _ = std::fs::copy(&shot, std::path::Path::new(&dir).join("restore-report.png"));
    }
}

/// #19.2: `status --long` names why a restore is not ready and prints its report;
/// `status --wait` waits while a restore runs (a live process holds the marker) and exits
/// with the restore's result, but not for a pid that started after the marker was written
/// (a crashed restore's pid reused); a store named on the command line must exist.
#[test]
fn status_waits_for_the_restore_and_says_why_it_is_not_ready() {
    let port = repo_server(&["trixie-pgdg"]);
    let t = tempfile::tempdir().unwrap();
    let old = old_service_host(&t.path().join("old"), port);
    let store = t.path().join("store");
    capture(&old.dir, &store);
    let new = new_trixie(&t.path().join("new"));
    let v = json(&restore(&new.dir, &store, &[], &[]));
    assert_eq!(v["state"], "degraded");
    let o = Cmd::new("status").root(&new.dir).arg("--long").run();
    assert_exit!(o, Some(0));
    let out = stdout(&o);
    assert!(
        out.contains("why not ready") && out.contains("mongodb-org"),
        "{out}"
    );
    assert!(out.contains("carryover restore report"), "{out}");
    // a restore "runs": a live process's pid in the marker; --wait returns once it ends
    let mut sleeper = std::process::Command::new("sleep")
        .arg("2")
        .spawn()
        .unwrap();
    new.file(
        "/var/lib/carryover/restore.running",
        &sleeper.id().to_string(),
    );
    let reaper = std::thread::spawn(move || sleeper.wait());
    let started = std::time::Instant::now();
    let o = Cmd::new("status").root(&new.dir).arg("--wait").run();
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1500),
        "--wait returned while the restore ran"
    );
    assert_exit!(o, Some(4));
    reaper.join().unwrap().unwrap();
    // --timeout gives up
    let mut sleeper = std::process::Command::new("sleep")
        .arg("5")
        .spawn()
        .unwrap();
    new.file(
        "/var/lib/carryover/restore.running",
        &sleeper.id().to_string(),
    );
    let o = Cmd::new("status")
        .root(&new.dir)
        .args(&["--wait", "--timeout", "1"])
        .json()
        .run();
    assert_exit!(o, Some(1));
    // a wait that gave up is told apart from a failed restore
    assert_eq!(json(&o)["error"]["kind"], "timeout", "{}", stdout(&o));
    // a marker left by a crash whose pid now belongs to another process (started after
    // the marker was written, as after a reboot): no restore runs, --wait does not wait
    let marker = new.dir.join("var/lib/carryover/restore.running");
    std::fs::File::options()
        .write(true)
        .open(&marker)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600))
        .unwrap();
    let started = std::time::Instant::now();
    let o = Cmd::new("status")
        .root(&new.dir)
        .args(&["--wait", "--timeout", "4"])
        .json()
        .run();
    assert_exit!(o, Some(4));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "--wait waited for a pid the crashed restore no longer owns"
    );
    assert_eq!(json(&o)["restore"], "none", "{}", stdout(&o));
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    let o = Cmd::new("status")
        .root(&new.dir)
        .args(&["--store", "/nonexistent/store"])
        .run();
    // the same failure as `snapshots list` on it
    assert_exit!(o, Some(1));
    assert!(
        stderr(&o).contains("store /nonexistent/store does not exist"),
        "{}",
        stderr(&o)
    );
    let o = Cmd::new("snapshots list")
        .root(&new.dir)
        .args(&["--store", "/nonexistent/store"])
        .run();
    assert_exit!(o, Some(1));
}

/// #19.5: `snapshots list` reads like restic's — a header, local times to the second,
/// sizes, paths, `latest`, what was not captured; an empty store says so.
#[test]
fn snapshots_list_is_a_table() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    let old = old_debian(&t.path().join("old"));
    old.file("/srv/app/data.bin", &"x".repeat(3000));
    let o = Cmd::new("capture")
        .root(&old.dir)
        .store(&store)
        .args(&["--path", "/srv/app"])
        .run();
    assert_exit!(o, Some(0));
    let id = capture(&old.dir, &store);
    let o = Cmd::new("snapshots list").store(&store).run();
    assert_exit!(o, Some(0));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("Time") && lines[0].contains("Size"),
        "{out}"
    );
    assert!(lines[1].starts_with("---"), "{out}");
    assert!(
        lines[2].contains("/srv/app") && lines[2].contains("KiB"),
        "{out}"
    );
    assert!(
        lines[3].starts_with(&id) && lines[3].ends_with("latest"),
        "{out}"
    );
    assert!(!lines[2].contains("latest"), "{out}");
    // second precision: `YYYY-MM-DD HH:MM:SS`
    let time = lines[2].split("  ").nth(1).unwrap();
    assert_eq!(time.len(), 19, "{out}");
    assert_eq!(lines.last(), Some(&"2 snapshots"));
    // `show` says the same: local time to the second, the data paths, files and size
    let first = lines[2].split_whitespace().next().unwrap();
    let o = Cmd::new("snapshots show")
        .arg(first)
        .root(&old.dir)
        .store(&store)
        .run();
    assert_exit!(o, Some(0));
    let show = stdout(&o);
    assert!(show.contains(&format!("created          {time}")), "{show}");
    assert!(show.contains("data paths       /srv/app"), "{show}");
    assert!(
        show.lines()
            .any(|l| l.starts_with("data             ") && l.contains("KiB")),
        "{show}"
    );
    // a store with no snapshot (its marker alone)
    let empty = t.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::copy(
        store.join("carryover-store.json"),
        empty.join("carryover-store.json"),
    )
    .unwrap();
    let o = Cmd::new("snapshots list").store(&empty).run();
    assert_exit!(o, Some(0));
    assert!(
        stdout(&o).starts_with("no snapshots in the store"),
        "{}",
        stdout(&o)
    );
}

/// #19.4: on a terminal (a pty from `script`), capture and restore draw a bar in binary
/// units, with the file count, an ETA only once it means something, within 80 columns.
#[test]
fn progress_bars_fit_80_columns_on_a_terminal() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    // 48 MiB that does not compress, in 64 files
    let mut seed = 0x9e3779b97f4a7c15u64;
    for i in 0..64 {
        let mut data = vec![0u8; 768 << 10];
        for b in data.iter_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *b = seed as u8;
        }
        std::fs::create_dir_all(old.p("/srv/big")).unwrap();
        std::fs::write(old.p(&format!("/srv/big/f{i:02}.bin")), &data).unwrap();
    }
    let store = t.path().join("store");
    let bin = agent_bin();
    let on_tty = |args: String| {
        let o = std::process::Command::new("script")
            .args(["-qec", &args, "/dev/null"])
            .env("COLUMNS", "80")
            .env("LINES", "24")
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let (code, out) = on_tty(format!(
        "stty cols 80 rows 24; {} capture --root {} --store {} --path /srv/big",
        bin.display(),
        old.dir.display(),
        store.display()
    ));
    assert_eq!(code, Some(0), "{out}");
    let new = new_debian(&t.path().join("new"));
    let (code, out2) = on_tty(format!(
        "stty cols 80 rows 24; {} restore --root {} --store {}",
        bin.display(),
        new.dir.display(),
        store.display()
    ));
    assert!(matches!(code, Some(0) | Some(4)), "{out2}");
    // the restore logs to a file too (root-only), at info level
    let log = new.read("/var/log/carryover/restore.log");
    assert!(log.contains("step=\"hostname\""), "{log}");
    assert_eq!(new.mode("/var/log/carryover/restore.log"), 0o600);
    // colour on a terminal, none with NO_COLOR
    let sgr = |t: &str| {
        t.match_indices("\u{1b}[").any(|(i, _)| {
            t[i + 2..]
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == ';')
                .count()
                < 8
                && t[i + 2..]
                    .trim_start_matches(|c: char| c.is_ascii_digit() || c == ';')
                    .starts_with('m')
        })
    };
    let dry = |no_color: bool| {
        on_tty(format!(
            "stty cols 80 rows 24; {}{} -v restore --dry-run --root {} --store {}",
            if no_color { "NO_COLOR=1 " } else { "" },
            bin.display(),
            new.dir.display(),
            store.display()
        ))
        .1
    };
    assert!(sgr(&dry(false)), "colour on a terminal");
    assert!(!sgr(&dry(true)), "NO_COLOR is respected");
    for (what, text) in [("capture", &out), ("restore", &out2)] {
        // the frames the terminal was sent, escape sequences taken out
        let plain = strip_ansi(text);
        let frames: Vec<&str> = plain
            .split(['\r', '\n'])
            .map(str::trim_end)
            .filter(|l| l.starts_with(what) && l.contains("iB"))
            .collect();
        assert!(!frames.is_empty(), "no {what} bar drawn: {plain:?}");
        for f in &frames {
            assert!(f.chars().count() <= 80, "{what} frame wider than 80: {f:?}");
            assert!(!f.contains("ETA 2") || !f.contains('h'), "{what}: {f:?}");
        }
        assert!(
            frames[0].contains("ETA --"),
            "no ETA before it means something: {:?}",
            frames[0]
        );
    }
    // a narrower terminal gets a shorter line
    let (code, narrow) = on_tty(format!(
        "stty cols 60 rows 24; {} capture --root {} --store {} --path /srv/big",
        bin.display(),
        old.dir.display(),
        t.path().join("store60").display()
    ));
    assert_eq!(code, Some(0), "{narrow}");
    let frames: Vec<String> = strip_ansi(&narrow)
        .split(['\r', '\n'])
        .map(|l| l.trim_end().to_string())
        .filter(|l| l.starts_with("capture") && l.contains("iB"))
        .collect();
    assert!(!frames.is_empty(), "{narrow:?}");
    for f in &frames {
        assert!(f.chars().count() <= 60, "frame wider than 60: {f:?}");
    }
    // restore counts its files against the snapshot's, and its last frame shows them all:
    // the bar moves for every file, written or already in place
    let plain = strip_ansi(&out2);
    let last = plain
        .split(['\r', '\n'])
        .rfind(|l| l.starts_with("restore") && l.contains("iB"))
        .unwrap()
        .trim_end()
        .to_string();
    assert!(
        last.ends_with("64/64 files") && last.contains("48.00 MiB/48.00 MiB"),
        "{last:?}"
    );
}

/// The text a terminal shows, without ANSI escape sequences.
fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
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

/// #19.2: an expected restore that fails before its plan (the store is not there) is
/// named by `status`, and `status --wait` does not wait for it forever.
#[test]
fn status_names_a_restore_that_failed_before_its_plan() {
    let t = tempfile::tempdir().unwrap();
    let new = new_trixie(&t.path().join("new"));
    new.file(
        "/etc/carryover/config.toml",
        "[store]\nurl = \"/mnt/not-mounted/carryover\"\n[restore]\nexpected = true\n",
    );
    let o = Cmd::new("restore").root(&new.dir).arg("--if-due").run();
    assert_exit!(o, Some(1));
    // the report an operator looks for says so, and the login banner points at it
    let report = new.read("/var/log/carryover/restore-report.txt");
    assert!(
        report.contains("result    FAILED")
            && report.contains("the restore stopped before its plan")
            && report.contains("not-mounted"),
        "{report}"
    );
    assert!(new.read("/etc/motd.d/50-carryover").contains("FAILED"));
    let page = t.path().join("page.html");
    let o = Cmd::new("report --html").arg(&page).root(&new.dir).run();
    assert_exit!(o, Some(0));
    assert!(
        std::fs::read_to_string(&page)
            .unwrap()
            .contains("not-mounted")
    );
    let o = Cmd::new("status").root(&new.dir).run();
    assert_exit!(o, Some(0));
    let out = stdout(&o);
    assert!(out.contains("restore") && out.contains("failed"), "{out}");
    assert!(
        out.contains("why it failed") && out.contains("not-mounted"),
        "{out}"
    );
    let started = std::time::Instant::now();
    let o = Cmd::new("status")
        .root(&new.dir)
        .args(&["--wait", "--timeout", "30"])
        .json()
        .run();
    assert_exit!(o, Some(1));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "it did not wait"
    );
    // the status itself, as without --wait, and the result as the exit code
    let v = json(&o);
    assert_eq!(v["restore"], "failed", "{v}");
    assert!(
        v["last_failure"]["error"]
            .to_string()
            .contains("not-mounted"),
        "{v}"
    );
    // the same failure recorded in an earlier boot: this boot's restore unit tries again,
    // so the restore is due, not failed (--wait waits for it)
    let state = new.p("/var/lib/carryover/state.json");
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    assert_eq!(record["last_failure"]["boot"], boot.trim(), "{record}");
    record["last_failure"]["boot"] = "00000000-0000-0000-0000-000000000000".into();
    std::fs::write(&state, serde_json::to_vec(&record).unwrap()).unwrap();
    let o = Cmd::new("status").root(&new.dir).json().run();
    assert_exit!(o, Some(0));
    assert_eq!(json(&o)["restore"], "due", "{}", stdout(&o));
    let o = Cmd::new("status")
        .root(&new.dir)
        .args(&["--wait", "--timeout", "1"])
        .json()
        .run();
    assert_exit!(o, Some(1));
    assert_eq!(json(&o)["error"]["kind"], "timeout", "{}", stdout(&o));
}

/// Review #25 (D): EL8's php-json is provided by EL9's php-common: the new OS has it (its
/// provides name it, as `rpm -q --whatprovides php-json` would), so it is neither
/// installed again nor read as "not installed" (NOT DONE) by the health check.
#[test]
fn a_name_the_new_os_provides_under_another_package_is_installed() {
    let t = tempfile::tempdir().unwrap();
    let old = old_rocky(&t.path().join("old"));
    old.file(
        "/etc/os-release",
        "NAME=\"Rocky Linux\"\nVERSION_ID=\"8.9\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n",
    );
    rpm_db(&old, &["php-json", "httpd"]);
    old.file(
        "/usr/lib/sysimage/libdnf5/packages.toml",
        "version = \"1.0\"\n[packages]\n\"php-json-1.0-1.el9.noarch\" = { reason = \"User\" }\n\"httpd-1.0-1.el9.noarch\" = { reason = \"User\" }\n",
    );
    let store = t.path().join("store");
    capture_rocky(&old, &store);
    let new = new_rocky(&t.path().join("new"));
    rpm_db(&new, &["php-common>php-json"]);
    let v = json(&restore(&new.dir, &store, &["--dry-run"], &[]));
    let p = step(&v, "packages");
    let changes = p["changes"].to_string();
    assert!(changes.contains("install httpd"), "{p}");
    assert!(!changes.contains("php-json"), "{p}");
    let v = json(&restore(&new.dir, &store, &[], &[]));
    let h = health(&v, "packages");
    assert!(!h["detail"].as_str().unwrap().contains("php-json"), "{h}");
}

/// A damaged record of the agent (`state.json`) is moved aside, never overwritten: the
/// restore runs and records itself, the damaged file stays for an operator to read.
#[test]
fn a_damaged_record_is_moved_aside_not_overwritten() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    let store = t.path().join("store");
    let id = capture(&old.dir, &store);
    let new = new_ubuntu(&t.path().join("new"));
    let damaged = "{\"last_restore\": {\"snapshot_id\": \"2026";
    new.file("/var/lib/carryover/state.json", damaged);
    let o = restore(&new.dir, &store, &[], &[]);
    assert_exit!(o, Some(0));
    assert!(stderr(&o).contains("moved aside"), "{}", stderr(&o));
    let aside: Vec<std::path::PathBuf> = std::fs::read_dir(new.p("/var/lib/carryover"))
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("state.json.damaged-")
        })
        .map(|e| e.path())
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read_to_string(&aside[0]).unwrap(), damaged);
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(new.p("/var/lib/carryover/state.json")).unwrap())
            .unwrap();
    assert_eq!(
        record["last_restore"]["snapshot_id"],
        id.as_str(),
        "{record}"
    );
}
