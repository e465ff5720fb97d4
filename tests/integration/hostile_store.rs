//! The store and the disk it sits on are untrusted (#16): a symlink planted in the store
//! never redirects a write, and nothing restore creates depends on the umask.

use std::os::unix::fs::{PermissionsExt, symlink};

use carryover::config::Config;
use carryover::data::codec;
use carryover::store::Store;
use carryover::store::crypto::Crypto;

use super::fixtures::*;

/// The key every encrypted store of these tests has (64 hex digits of 0xab).
const KEY: [u8; 32] = [0xab; 32];

/// Gives a tree the store key and a config that uses it, plus `extra` config lines.
fn with_store_key(t: &Tree, extra: &str) {
    t.file_mode("/etc/carryover/store.key", &hex::encode(KEY), 0o600);
    t.file(
        "/etc/carryover/config.toml",
        &format!("[store]\nencryption_key_file = \"/etc/carryover/store.key\"\n{extra}"),
    );
}

/// An old system with `/srv/app` and a store key, and where its store goes.
fn encrypted_old(dir: &std::path::Path) -> (Tree, std::path::PathBuf) {
    let old = old_debian(&dir.join("old"));
    old.file("/srv/app/db.sqlite", "rows\n");
    with_store_key(&old, "");
    (old, dir.join("store"))
}

/// Captures `/srv/app` of `old` into `store`; the snapshot's id.
fn capture_app(old: &Tree, store: &std::path::Path) -> String {
    let o = Cmd::new("capture")
        .root(&old.dir)
        .store(store)
        .args(&["--path", "/srv/app"])
        .json()
        .run();
    assert_exit!(o, Some(0));
    json(&o)["snapshot_id"].as_str().unwrap().to_string()
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// #16.2: `journal/` replaced by a link to a folder outside the store: restore refuses to
/// write through it (and says so to the orchestrator's log), nothing lands outside.
#[test]
fn a_symlinked_folder_in_the_store_is_refused_not_followed() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    let store = t.path().join("store");
    capture(&old.dir, &store);
    let victim = t.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    let _ = std::fs::remove_dir_all(store.join("journal"));
    symlink(&victim, store.join("journal")).unwrap();
    let new = new_ubuntu(&t.path().join("new"));
    let o = restore(&new.dir, &store, &[], &[]);
    assert_exit!(o, Some(1));
    assert!(stderr(&o).contains("symbolic link"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_dir(&victim).unwrap().count(),
        0,
        "nothing written outside"
    );
}

/// `dir` and every folder below it.
fn dirs_below(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_dir())
        .map(|e| e.into_path())
        .collect()
}

/// #16.2: modes are set through a descriptor, never by a name a link could redirect: the
/// agent's state folder made a link that climbs out of the tree is resolved inside the
/// root (as every path is), and the folder outside keeps its mode.
#[test]
fn a_link_at_the_state_folder_does_not_redirect_its_mode() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    let store = t.path().join("store");
    capture(&old.dir, &store);
    let new = new_ubuntu(&t.path().join("new"));
    let victim = t.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o755)).unwrap();
    // new/var/lib/carryover → ../../../victim: out of the tree for the host, /victim
    // inside the root
    new.link("/var/lib/carryover", "../../../victim");
    let o = restore(&new.dir, &store, &[], &[]);
    assert_exit!(o, Some(0));
    assert_eq!(
        mode(&victim),
        0o755,
        "the folder outside the tree was chmodded"
    );
    assert_eq!(std::fs::read_dir(&victim).unwrap().count(), 0);
    assert_eq!(mode(&new.p("/victim")), 0o700);
}

/// #16.5: restore under umask 077 and 000: what it creates has the mode it must have
/// (every folder it makes under /etc 0755 — resolved.conf.d, timesyncd.conf.d, cron.d,
/// sysctl.d… — their files 0644, a data root and what is in it the captured mode, the
/// agent's own state 0700), never 0700 for a folder a service must read nor 0777.
#[test]
fn restore_does_not_depend_on_the_umask() {
    for umask in ["077", "000"] {
        let t = tempfile::tempdir().unwrap();
        let old = old_debian(&t.path().join("old"));
        // a data root with a mode of its own, below a folder the new OS lacks
        old.file_mode("/srv/app/bin/run", "#!/bin/sh\n", 0o750);
        old.file_mode("/srv/app/notes", "hello\n", 0o640);
        std::fs::set_permissions(
            old.p("/srv/app/bin"),
            std::fs::Permissions::from_mode(0o711),
        )
        .unwrap();
        std::fs::set_permissions(old.p("/srv/app"), std::fs::Permissions::from_mode(0o2750))
            .unwrap();
        let store = t.path().join("store");
        capture_app(&old, &store);
        let new = new_ubuntu(&t.path().join("new"));
        // the folders below /etc the image has: every other one is the restore's
        let image_dirs = dirs_below(&new.p("/etc"));
        let o = Cmd::new("restore")
            .under(&["sh", "-c", &format!("umask {umask}; exec \"$@\""), "sh"])
            .root(&new.dir)
            .store(&store)
            .run();
        assert_exit!(o, Some(0));
        let dropin = new.p("/etc/systemd/resolved.conf.d");
        for f in std::fs::read_dir(&dropin).unwrap() {
            assert_eq!(mode(&f.unwrap().path()), 0o644, "umask {umask}");
        }
        let mut created = Vec::new();
        for e in walkdir::WalkDir::new(new.p("/etc")) {
            let e = e.unwrap();
            if !e.file_type().is_dir() || image_dirs.contains(&e.path().to_path_buf()) {
                continue;
            }
            let abs = format!("/{}", e.path().strip_prefix(&new.dir).unwrap().display());
            // the agent's own configuration (the orchestrator's token) is root's only
            let want = if abs.starts_with("/etc/carryover") {
                0o700
            } else {
                0o755
            };
            assert_eq!(mode(e.path()), want, "umask {umask}: {abs}");
            created.push(abs);
        }
        for dir in [
            "/etc/systemd/resolved.conf.d",
            "/etc/systemd/timesyncd.conf.d",
            "/etc/cron.d",
            "/etc/sysctl.d",
            "/etc/cloud/cloud.cfg.d",
        ] {
            assert!(
                created.iter().any(|c| c == dir) || image_dirs.contains(&new.p(dir)),
                "umask {umask}: {dir} is not there: {created:?}"
            );
        }
        assert!(
            created.len() >= 4,
            "umask {umask}: the restore made these folders below /etc: {created:?}"
        );
        // the data root and what is in it as captured; the folder above it 0755
        for (path, want) in [
            ("/srv", 0o755),
            ("/srv/app", 0o2750),
            ("/srv/app/bin", 0o711),
            ("/srv/app/bin/run", 0o750),
            ("/srv/app/notes", 0o640),
        ] {
            assert_eq!(mode(&new.p(path)), want, "umask {umask}: {path}");
        }
        // an event for an orchestrator that is down waits in the outbox
        let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = down.local_addr().unwrap().port();
        drop(down);
        new.file(
            "/etc/carryover/config.toml",
            &format!("[report]\nurl = \"http://127.0.0.1:{port}/api\"\n"),
        );
        let o = Cmd::new("report")
            .under(&["sh", "-c", &format!("umask {umask}; exec \"$@\""), "sh"])
            .root(&new.dir)
            .args(&["--event", "check:succeeded", "--wait", "0"])
            .run();
        assert_exit!(o, Some(1));
        // the agent's own state: every folder 0700 (backup/<snapshot>/…, outbox/failed/)
        let private = dirs_below(&new.p("/var/lib/carryover"));
        for dir in [
            "/var/lib/carryover/backup",
            "/var/lib/carryover/outbox/failed",
        ] {
            assert!(private.contains(&new.p(dir)), "umask {umask}: {private:?}");
        }
        for dir in &private {
            assert_eq!(mode(dir), 0o700, "umask {umask}: {}", dir.display());
        }
        // nothing in the tree is writable by everyone (links aside: theirs is 0777)
        for e in walkdir::WalkDir::new(&new.dir) {
            let e = e.unwrap();
            if !e.path_is_symlink() {
                let m = mode(e.path());
                assert!(
                    m & 0o002 == 0,
                    "umask {umask}: {} is {m:o}",
                    e.path().display()
                );
            }
        }
        // the store's own folders stay 0700
        for e in walkdir::WalkDir::new(&store).min_depth(1) {
            let e = e.unwrap();
            if e.file_type().is_dir() {
                assert_eq!(
                    mode(e.path()),
                    0o700,
                    "umask {umask}: {}",
                    e.path().display()
                );
            }
        }
    }
}

/// #16.4: a forged journal claiming every step done (data included) for this snapshot and
/// target does not make an empty restore `ready`: the health check sees the data missing;
/// a journal of another snapshot is not resumed at all.
#[test]
fn a_forged_journal_does_not_make_a_restore_ready() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    old.file("/srv/app/db.sqlite", "precious rows\n");
    let store = t.path().join("store");
    let o = Cmd::new("capture")
        .root(&old.dir)
        .store(&store)
        .args(&["--path", "/srv/app"])
        .json()
        .run();
    assert_exit!(o, Some(0));
    let id = json(&o)["snapshot_id"].as_str().unwrap().to_string();
    let new = new_ubuntu(&t.path().join("new"));
    let target = format!(
        "{INSTANCE}@{}",
        std::fs::canonicalize(&new.dir).unwrap().display()
    );
    let plan = json(&restore(&new.dir, &store, &["--dry-run"], &[]));
    let steps: Vec<serde_json::Value> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| serde_json::json!({"name": s["name"], "status": "changed", "detail": "forged"}))
        .collect();
    let forged = serde_json::json!({
        "snapshot_id": id, "target": target, "started_at": "2026-01-01T00:00:00Z",
        "finished_at": null, "steps": steps,
    });
    std::fs::create_dir_all(store.join("journal")).unwrap();
    std::fs::write(
        store.join(format!("journal/{id}.json")),
        serde_json::to_vec(&forged).unwrap(),
    )
    .unwrap();
    let v = json(&restore(&new.dir, &store, &[], &[]));
    assert_eq!(v["resumed"], true, "{v}");
    assert_ne!(v["state"], "ready", "{v}");
    let data = health(&v, "data");
    assert_eq!(data["ok"], false, "{data}");
    assert!(
        data["detail"]
            .as_str()
            .unwrap()
            .contains("/srv/app/db.sqlite"),
        "{data}"
    );
    assert!(!new.p("/srv/app/db.sqlite").exists());

    // a journal copied from another snapshot is not this restore's: it starts over
    let mut other = forged.clone();
    other["snapshot_id"] = "20200101T000000000Z-00000000".into();
    let new2 = new_ubuntu(&t.path().join("new2"));
    std::fs::write(
        store.join(format!("journal/{id}.json")),
        serde_json::to_vec(&other).unwrap(),
    )
    .unwrap();
    let v = json(&restore(&new2.dir, &store, &[], &[]));
    assert_eq!(v["resumed"], false, "{v}");
    assert_eq!(v["state"], "ready", "{v}");
    assert_eq!(new2.read("/srv/app/db.sqlite"), "precious rows\n");
}

/// #16.4: the steps a dry run cannot re-check — `packages`, `activate`, `readiness` — are
/// not taken on a journal's word: a journal forged (from a real one of this snapshot and
/// target) to say `packages` was done leaves the restore `degraded` with its health check
/// failed (the chosen packages are not installed), and `activate` and `readiness` are run
/// again whatever the journal says (review #25 C).
#[test]
fn a_forged_journal_cannot_claim_packages_activate_or_readiness() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    let store = t.path().join("store");
    let id = capture(&old.dir, &store);
    let new = new_ubuntu(&t.path().join("new"));
    let v = json(&restore(&new.dir, &store, &[], &[]));
    assert_eq!(v["state"], "ready", "{v}");
    let journal = store.join(format!("journal/{id}.json"));
    let genuine = std::fs::read(&journal).unwrap();
    // the journal of that restore, reopened with `forged` claiming to be done
    let forge = |forged: &str| {
        let mut j: serde_json::Value = serde_json::from_slice(&genuine).unwrap();
        j["finished_at"] = serde_json::Value::Null;
        for s in j["steps"].as_array_mut().unwrap() {
            if s["name"] == forged {
                *s = serde_json::json!({"name": forged, "status": "changed", "detail": "forged"});
            }
        }
        std::fs::write(&journal, serde_json::to_vec(&j).unwrap()).unwrap();
        let v = json(&restore(&new.dir, &store, &[], &[]));
        assert_eq!(v["resumed"], true, "{v}");
        v
    };
    // the chosen packages the new OS lacks (nginx, chrony) are found not installed
    let v = forge("packages");
    assert_eq!(v["state"], "degraded", "{v}");
    let h = health(&v, "packages");
    assert_eq!(h["ok"], false, "{h}");
    assert!(h["detail"].as_str().unwrap().contains("nginx"), "{h}");
    // activate is never taken from the journal (review #25 C): run again (here skipped,
    // as on any tree), so services the image already ran get their try-restart
    let v = forge("activate");
    assert_eq!(step(&v, "activate")["status"], "skipped", "{v}");
    assert_ne!(step(&v, "activate")["detail"], "forged", "{v}");
    assert_eq!(v["state"], "ready", "{v}");
    assert_eq!(health(&v, "activate")["ok"], true, "{v}");
    // readiness is run again (here: skipped, as on any tree), never read from the journal
    let v = forge("readiness");
    assert_eq!(step(&v, "readiness")["status"], "skipped", "{v}");
    assert_ne!(step(&v, "readiness")["detail"], "forged", "{v}");
    assert_eq!(v["state"], "ready", "{v}");
    // and an honest restore's checks of these steps pass: nothing claimed, nothing missing
    for name in ["packages", "activate"] {
        assert_eq!(health(&v, name)["ok"], true, "{v}");
    }
}

/// #16.3: an encrypted store authenticates its manifests — an edited data root (or any
/// other field) is refused; and a store whose newer snapshots were removed (rolled back)
/// is refused by the new OS, which knows from the user-data the newest there was.
#[test]
fn an_edited_manifest_and_a_rolled_back_store_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let (old, store) = encrypted_old(t.path());
    let first = capture_app(&old, &store);
    let second = capture_app(&old, &store);
    let new = new_ubuntu(&t.path().join("new"));
    with_store_key(&new, &format!("[restore]\nnot_before = \"{second}\"\n"));
    // the data root edited in the readable manifest: refused
    let path = store.join(format!("snapshots/{second}.json"));
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("\"/srv/app\"", "\"/srv/www\"")).unwrap();
    let o = restore(&new.dir, &store, &["--snapshot", &second], &[]);
    assert_exit!(o, Some(1));
    assert!(stderr(&o).contains("not authenticated"), "{}", stderr(&o));
    assert!(!new.p("/srv/www").exists() && !new.p("/srv/app").exists());
    // the newest snapshot removed: restore would pick the older one by itself — refused
    std::fs::remove_file(&path).unwrap();
    let o = restore(&new.dir, &store, &[], &[]);
    assert_exit!(o, Some(1));
    assert!(stderr(&o).contains("rolled back"), "{}", stderr(&o));
    // named explicitly, the older one is restored
    let o = restore(&new.dir, &store, &["--snapshot", &first], &[]);
    assert_exit!(o, Some(0));
    assert_eq!(new.read("/srv/app/db.sqlite"), "rows\n");
}

/// #16.7: a plain store's state validated by grammar and place: a data mount over `/usr`,
/// a user with gid 0 and a home in `/root`, a password line with a newline that smuggles
/// another account's line, a token path that would be a config drop-in — each refused,
/// the rest restored.
#[test]
fn planted_state_fields_are_refused_by_grammar_and_place() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    old.file(
        "/etc/carryover/config.toml",
        "[capture]\npassword_hashes = true\n[report]\nurl = \"http://127.0.0.1:9/api\"\nsend_timeout_seconds = 1\n",
    );
    old.file_mode("/etc/carryover/token", "t0ken\n", 0o600);
    let store = t.path().join("store");
    let id = capture(&old.dir, &store);
    tamper(
        &store,
        &id,
        |v| {
            let mounts = v["mounts"].as_array_mut().unwrap();
            let mut over = mounts
                .iter()
                .find(|m| m["mountpoint"] == "/srv")
                .cloned()
                .unwrap();
            over["mountpoint"] = "/usr".into();
            mounts.push(over);
            let users = v["users"].as_array_mut().unwrap();
            let mut evil = users[0].clone();
            evil["name"] = "svc".into();
            evil["uid"] = 999.into();
            evil["gid"] = 0.into();
            evil["group"] = "root".into();
            evil["home"] = "/root/.ssh".into();
            users.push(evil);
        },
        true,
    );
    // the secrets object: alice's shadow line carries root's too; the token goes to config.d
    let secrets_path = store.join(format!("objects/{id}/secrets.json"));
    let mut sec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&secrets_path).unwrap()).unwrap();
    for e in sec["shadow"].as_array_mut().unwrap() {
        if e["name"] == "alice" {
            e["line"] =
                "alice:$6$x$y:19750:0:99999:7:::\nroot:$6$evil$hash:19750:0:99999:7:::".into();
        }
    }
    sec["report_token"]["path"] = "/etc/carryover/config.d/99-evil.toml".into();
    let bytes = serde_json::to_vec(&sec).unwrap();
    std::fs::write(&secrets_path, &bytes).unwrap();
    let mpath = store.join(format!("snapshots/{id}.json"));
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    m["secrets"]["size"] = bytes.len().into();
    m["secrets"]["blake3"] = blake3::hash(&bytes).to_hex().to_string().into();
    std::fs::write(&mpath, serde_json::to_vec(&m).unwrap()).unwrap();

    let new = new_ubuntu(&t.path().join("new"));
    let v = json(&restore(&new.dir, &store, &[], &[]));
    let all = v.to_string();
    assert!(
        !new.read("/etc/fstab").contains(" /usr "),
        "{}",
        new.read("/etc/fstab")
    );
    assert!(
        !new.read("/etc/fstab").contains("\t/usr\t"),
        "{}",
        new.read("/etc/fstab")
    );
    assert!(
        !new.read("/etc/passwd").contains("svc:"),
        "{}",
        new.read("/etc/passwd")
    );
    assert!(all.contains("refusing the user 'svc'"), "{all}");
    let shadow = new.read("/etc/shadow");
    assert!(!shadow.contains("evil"), "{shadow}");
    assert!(
        all.contains("refusing the password line of 'alice'"),
        "{all}"
    );
    assert!(!new.p("/etc/carryover/config.d/99-evil.toml").exists());
    assert_eq!(new.read("/etc/carryover/token"), "t0ken\n");
    assert_eq!(v["state"], "degraded", "{all}");
}

/// #16.3: every sealed object is bound to its store, kind and snapshot (AEAD associated
/// data). Another snapshot's state object copied over this one's (its checksum then fails,
/// and restore tries to save what it can of a damaged state) does not open as this
/// snapshot's: nothing of the other snapshot's state is restored, the restore fails and
/// says whose object it is.
#[test]
fn a_state_object_swapped_between_snapshots_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let (old, store) = encrypted_old(t.path());
    let first = capture_app(&old, &store);
    old.file("/etc/hostname", "web02\n");
    let second = capture_app(&old, &store);
    std::fs::copy(
        store.join(format!("objects/{first}/state.json")),
        store.join(format!("objects/{second}/state.json")),
    )
    .unwrap();
    let new = new_ubuntu(&t.path().join("new"));
    with_store_key(&new, "");
    let o = restore(&new.dir, &store, &["--snapshot", &second], &[]);
    let v = json(&o);
    let all = v.to_string();
    assert_eq!(v["state"], "failed", "{all}");
    assert!(
        all.contains(&format!("it is state.json of snapshot {first}")),
        "{all}"
    );
    assert_eq!(
        new.read("/etc/hostname"),
        "ubuntu\n",
        "nothing of it restored"
    );
}

/// #16.3: a tree blob put under a data blob's name (the pack index edited to point the
/// file's chunk at a tree blob) is refused as what it is — sealed as a tree blob, it does
/// not open as a file's content; the file is named as not restored.
#[test]
fn a_tree_blob_under_a_data_blobs_name_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let (old, dir) = encrypted_old(t.path());
    let id = capture_app(&old, &dir);
    let store = Store::open(
        dir.to_str().unwrap(),
        &Config::default(),
        false,
        Some(Crypto::from_key(KEY)),
    )
    .unwrap();
    let m = store.manifest(&id).unwrap();
    let tree = m.data.unwrap().roots[0].tree[0];
    let mut moved = 0;
    for key in store.backend().list("index/").unwrap() {
        let mut pi = codec::decode_index(&std::fs::read(dir.join(&key)).unwrap()).unwrap();
        let Some(t) = pi.blobs.iter().find(|e| e.id == tree).cloned() else {
            continue;
        };
        for e in pi.blobs.iter_mut().filter(|e| e.id != tree) {
            (e.offset, e.length, e.raw_length, e.compressed) =
                (t.offset, t.length, t.raw_length, t.compressed);
            moved += 1;
        }
        std::fs::write(dir.join(&key), codec::encode_index(&pi)).unwrap();
    }
    assert_eq!(moved, 1, "the file's one chunk points at the tree blob");
    let new = new_ubuntu(&t.path().join("new"));
    with_store_key(&new, "");
    let v = json(&restore(&new.dir, &dir, &[], &[]));
    let all = v.to_string();
    assert!(
        all.contains("a data blob: authentication failed: it is a tree blob"),
        "{all}"
    );
    assert!(all.contains("/srv/app/db.sqlite"), "{all}");
    assert_ne!(v["state"], "ready", "{all}");
    assert!(!new.p("/srv/app/db.sqlite").exists());
}

/// #16.3, rollback by instance: restore never picks by itself a snapshot older than the
/// newest one seen of this instance — by this machine (a restore ran here) or by the
/// store's own record of the instance (a capture wrote it) — and says which; named, the
/// older one is restored. Each manifest names its parent (the newest before it).
#[test]
fn a_store_rolled_back_below_the_newest_seen_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    let store = t.path().join("store");
    let first = capture(&old.dir, &store);
    let second = capture(&old.dir, &store);
    let manifest = store.join(format!("snapshots/{second}.json"));
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    assert_eq!(m["parent"], first.as_str(), "{m}");
    let new = new_ubuntu(&t.path().join("new"));
    let o = restore(&new.dir, &store, &[], &[]);
    assert_exit!(o, Some(0));
    assert_eq!(json(&o)["snapshot_id"], second.as_str());

    // the whole store rolled back (the newest manifest and the store's record gone): this
    // machine remembers
    let record = store.join(format!("seen/{INSTANCE}.json"));
    let kept = std::fs::read(&record).unwrap();
    std::fs::remove_file(&manifest).unwrap();
    std::fs::remove_file(&record).unwrap();
    let o = restore(&new.dir, &store, &[], &[]);
    assert_exit!(o, Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("rolled back") && err.contains(&second),
        "{err}"
    );
    assert!(err.contains("this machine's own record"), "{err}");

    // a fresh machine (no record of its own, no `not_before`): the store's record says
    std::fs::write(&record, kept).unwrap();
    let fresh = new_ubuntu(&t.path().join("fresh"));
    let o = restore(&fresh.dir, &store, &[], &[]);
    assert_exit!(o, Some(1));
    let err = stderr(&o);
    assert!(err.contains("the store's record of the instance"), "{err}");
    assert!(!fresh.read("/etc/hostname").contains("web01"));
    // named, the older snapshot is restored
    let o = restore(&fresh.dir, &store, &["--snapshot", &first], &[]);
    assert_exit!(o, Some(0));
    assert_eq!(fresh.read("/etc/hostname"), "web01\n");
}

/// #16.7: a plain store's resolver and hosts values, and fstab fields, are each parsed
/// by their grammar (an IP address, a domain, a resolver option, host names, a mount's
/// words): a quote or `;` that would break out of a `dhclient.conf` string, a zone that
/// smuggles text after an IPv6 address, `localhost` pointed at another host, a newline in
/// a mount option, a mountpoint climbing into `/etc` — each refused by name, and nothing
/// of it reaches a file of the new OS.
#[test]
fn resolver_hosts_and_fstab_values_are_parsed_by_their_grammar() {
    type Edit = fn(&mut serde_json::Value);
    let cases: [(Edit, &str, &str); 7] = [
        (
            |v| v["dns"]["search"] = serde_json::json!(["corp.example\";option"]),
            "refusing the search domain",
            "corp.example\"",
        ),
        (
            |v| v["dns"]["nameservers"] = serde_json::json!(["fe80::1%eth0\";supersede"]),
            "refusing the nameserver",
            "supersede\"",
        ),
        (
            |v| v["dns"]["options"] = serde_json::json!(["rotate;reload"]),
            "refusing the option",
            "rotate;",
        ),
        (
            |v| {
                push(
                    v,
                    "hosts",
                    serde_json::json!({"address": "203.0.113.7", "names": ["localhost"]}),
                )
            },
            "belong to a loopback address",
            "203.0.113.7",
        ),
        (
            |v| {
                push(
                    v,
                    "hosts",
                    serde_json::json!({"address": "10.9.9.9", "names": ["db;x"]}),
                )
            },
            "not an IP address and host names",
            "10.9.9.9",
        ),
        (
            |v| {
                let m = srv_mount(v, |m| {
                    m["options"] =
                        serde_json::json!(["defaults\n/dev/vdc /etc/cron.d ext4 exec,suid"]);
                });
                push(v, "mounts", m);
            },
            "refusing the fstab entry",
            "cron.d",
        ),
        (
            |v| {
                let m = srv_mount(v, |m| m["mountpoint"] = "/srv/../etc/cron.d".into());
                push(v, "mounts", m);
            },
            "refusing the",
            "cron.d",
        ),
    ];
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    let store = t.path().join("store");
    let id = capture(&old.dir, &store);
    let state = store.join(format!("objects/{id}/state.json"));
    let (pristine, manifest) = (
        std::fs::read(&state).unwrap(),
        std::fs::read(store.join(format!("snapshots/{id}.json"))).unwrap(),
    );
    for (i, (edit, refusal, planted)) in cases.into_iter().enumerate() {
        std::fs::write(&state, &pristine).unwrap();
        std::fs::write(store.join(format!("snapshots/{id}.json")), &manifest).unwrap();
        tamper(&store, &id, edit, true);
        let new = new_ubuntu(&t.path().join(format!("new{i}")));
        let v = json(&restore(&new.dir, &store, &[], &[]));
        let all = v.to_string();
        assert!(all.contains(refusal), "case {i}: {all}");
        assert_eq!(v["state"], "degraded", "case {i}: {all}");
        for e in walkdir::WalkDir::new(new.p("/etc")) {
            let e = e.unwrap();
            if e.file_type().is_file() {
                let text = String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned();
                assert!(
                    !text.contains(planted),
                    "case {i}: {}: {text}",
                    e.path().display()
                );
            }
        }
    }
}

/// Appends `item` to the array `key` of a state document.
fn push(v: &mut serde_json::Value, key: &str, item: serde_json::Value) {
    v[key].as_array_mut().unwrap().push(item);
}

/// The captured `/srv` data-disk mount, changed by `edit`.
fn srv_mount(v: &serde_json::Value, edit: impl Fn(&mut serde_json::Value)) -> serde_json::Value {
    let mut m = v["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountpoint"] == "/srv")
        .cloned()
        .unwrap();
    edit(&mut m);
    m
}

/// A FIFO, a link or a file of gigabytes planted at the store's marker: every restore
/// refuses it at once, with a clear error that reaches its report. A FIFO used to hang
/// the restore before it could report (every boot, `TimeoutStartSec=infinity`); a link
/// was followed; a sparse file of gigabytes would have been read whole into memory.
#[test]
fn a_fifo_a_link_or_a_huge_file_at_a_store_object_is_refused_at_once() {
    let t = tempfile::tempdir().unwrap();
    let old = old_debian(&t.path().join("old"));
    let store = t.path().join("store");
    capture(&old.dir, &store);
    let marker = store.join("carryover-store.json");
    let elsewhere = t.path().join("elsewhere.json");
    std::fs::copy(&marker, &elsewhere).unwrap();
    for planted in ["fifo", "link", "huge"] {
        std::fs::remove_file(&marker).unwrap();
        match planted {
            "fifo" => nix::unistd::mkfifo(&marker, nix::sys::stat::Mode::S_IRWXU).unwrap(),
            "link" => symlink(&elsewhere, &marker).unwrap(),
            _ => std::fs::File::create(&marker)
                .unwrap()
                .set_len(3 << 30)
                .unwrap(),
        }
        let new = new_ubuntu(&t.path().join(format!("new-{planted}")));
        let o = Cmd::new("restore")
            .under(&["timeout", "-s", "KILL", "60"])
            .root(&new.dir)
            .store(&store)
            .run();
        assert_exit!(o, Some(1));
        let err = stderr(&o);
        let why = match planted {
            "fifo" => "not a regular file",
            "link" => "symbolic link",
            _ => "larger than any object the store writes",
        };
        assert!(err.contains(why), "{planted}: {err}");
        assert!(err.contains("carryover-store.json"), "{planted}: {err}");
        assert_eq!(new.read("/etc/hostname"), "ubuntu\n", "{planted}");
    }
}

/// A journal that cannot be read — a flipped byte in an encrypted store's (its seal
/// fails) — is not this restore's: the restore starts over and finishes, instead of
/// failing at every attempt with nothing restored. A folder in its place is refused: a
/// clear failure before any step.
#[test]
fn a_journal_that_cannot_be_read_is_started_over() {
    let t = tempfile::tempdir().unwrap();
    let (old, store) = encrypted_old(t.path());
    let id = capture_app(&old, &store);
    let journal = store.join(format!("journal/{id}.json"));
    for damage in ["flipped", "folder"] {
        let new = new_ubuntu(&t.path().join(format!("new-{damage}")));
        with_store_key(&new, "");
        let o = restore(&new.dir, &store, &[], &[]);
        assert_exit!(o, Some(0));
        let _ = std::fs::remove_dir_all(&journal);
        match damage {
            "flipped" => {
                let mut b = std::fs::read(&journal).unwrap();
                let mid = b.len() / 2;
                b[mid] ^= 0x40;
                std::fs::write(&journal, b).unwrap();
            }
            _ => {
                std::fs::remove_file(&journal).unwrap();
                std::fs::create_dir(&journal).unwrap();
            }
        }
        let again = new_ubuntu(&t.path().join(format!("again-{damage}")));
        with_store_key(&again, "");
        let o = restore(&again.dir, &store, &[], &[]);
        if damage == "folder" {
            // planted, not damaged: a clear failure before any step, the system untouched
            assert_exit!(o, Some(1));
            assert!(stdout(&o).contains("not a regular file"), "{}", stdout(&o));
            assert_eq!(again.read("/etc/hostname"), "ubuntu\n");
            continue;
        }
        assert_exit!(o, Some(0));
        assert_eq!(json(&o)["state"], "ready", "{damage}: {}", stdout(&o));
        assert!(
            stderr(&o).contains("cannot be read"),
            "{damage}: {}",
            stderr(&o)
        );
        assert_eq!(again.read("/srv/app/db.sqlite"), "rows\n", "{damage}");
        assert_eq!(again.read("/etc/hostname"), "web01\n", "{damage}");
    }
}
