//! Directory trees shaped like real servers: an old OS (Debian 12 on an ECS, customised
//! the way operators do) and fresh new-OS images (Ubuntu 22.04 cloud image, Rocky 9).

use std::os::unix::fs::{PermissionsExt, chown, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const INSTANCE: &str = "4c4c4544-0042-3510-8053-b4c04f4a4d32";
pub const ED25519_PUB: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIELFsTTm6AGMDspKDm0h2i3V9DvYKztJcBi8EG7O2iTP root@web01";
pub const ED25519_FP: &str = "SHA256:16m0RK1avw93Jyt93KdQDaoe3MkkYQgvCMHSnjbJy/g";
pub const ED25519_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nOLD-OS-HOST-KEY-MATERIAL\n-----END OPENSSH PRIVATE KEY-----\n";

/// A tree under construction.
pub struct Tree {
    pub dir: PathBuf,
}

impl Tree {
    pub fn new(dir: &Path) -> Tree {
        std::fs::create_dir_all(dir).unwrap();
        Tree {
            dir: dir.to_path_buf(),
        }
    }

    pub fn p(&self, abs: &str) -> PathBuf {
        self.dir.join(abs.trim_start_matches('/'))
    }

    pub fn file(&self, abs: &str, content: &str) -> &Self {
        self.file_mode(abs, content, 0o644)
    }

    pub fn file_mode(&self, abs: &str, content: &str, mode: u32) -> &Self {
        let p = self.p(abs);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        self
    }

    pub fn link(&self, abs: &str, target: &str) -> &Self {
        let p = self.p(abs);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&p);
        symlink(target, &p).unwrap();
        self
    }

    pub fn dir(&self, abs: &str) -> &Self {
        std::fs::create_dir_all(self.p(abs)).unwrap();
        self
    }

    pub fn read(&self, abs: &str) -> String {
        std::fs::read_to_string(self.p(abs)).unwrap_or_else(|e| panic!("{abs}: {e}"))
    }

    /// The permission bits of a file in the tree (not through a link).
    pub fn mode(&self, abs: &str) -> u32 {
        std::fs::symlink_metadata(self.p(abs))
            .unwrap_or_else(|e| panic!("{abs}: {e}"))
            .permissions()
            .mode()
            & 0o7777
    }
}

/// The carryover binary under test: `CARRYOVER_TEST_BIN` when set (another build of the
/// agent, e.g. the aarch64 one that `.ci/run` drives under qemu), else this build's.
pub fn agent_bin() -> PathBuf {
    match std::env::var_os("CARRYOVER_TEST_BIN") {
        Some(b) if !b.is_empty() => PathBuf::from(b),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_carryover")),
    }
}

/// The words that start `program` for this test run: `CARRYOVER_TEST_RUNNER` (split on
/// blanks, e.g. `qemu-aarch64-static -L /usr/aarch64-linux-gnu`) before it when set.
pub fn runner_argv(program: &Path) -> Vec<std::ffi::OsString> {
    let runner = std::env::var("CARRYOVER_TEST_RUNNER").unwrap_or_default();
    let mut argv: Vec<std::ffi::OsString> = runner.split_whitespace().map(Into::into).collect();
    argv.push(program.into());
    argv
}

/// A command that starts `program` (a build of the agent) the way this test run must.
pub fn runner_command(program: &Path) -> Command {
    let argv = runner_argv(program);
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..]);
    c
}

/// A command that starts the binary under test.
pub fn agent_command() -> Command {
    runner_command(&agent_bin())
}

/// The CPU architecture a Linux binary is for, from its ELF header's e_machine.
pub fn elf_arch(bin: &Path) -> &'static str {
    let head = std::fs::read(bin).unwrap();
    assert_eq!(&head[..4], b"\x7fELF", "{} is not ELF", bin.display());
    match u16::from_le_bytes([head[18], head[19]]) {
        0x3e => "x86_64",
        0xb7 => "aarch64",
        m => panic!("{}: machine {m:#x}", bin.display()),
    }
}

/// The store key capture keeps the binary under test at.
pub fn own_agent_key() -> String {
    format!("agent/linux-{}/carryover", elf_arch(&agent_bin()))
}

/// The other Linux architecture than the binary under test's.
pub fn other_arch() -> &'static str {
    match elf_arch(&agent_bin()) {
        "x86_64" => "aarch64",
        _ => "x86_64",
    }
}

/// A stand-in for another build of the agent: a 64-bit little-endian ELF executable's
/// header for `arch` (what carryover reads to know which platform a binary is for), then
/// `tag` so that two stand-ins differ.
pub fn elf_stand_in(arch: &str, tag: &str) -> Vec<u8> {
    let mut h = vec![0u8; 64];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = 2; // ELFCLASS64
    h[5] = 1; // little-endian
    h[6] = 1;
    h[16] = 3; // ET_DYN, as a PIE
    let machine: u16 = match arch {
        "x86_64" => 0x3e,
        "aarch64" => 0xb7,
        other => panic!("{other}"),
    };
    h[18..20].copy_from_slice(&machine.to_le_bytes());
    h.extend_from_slice(tag.as_bytes());
    h
}

/// A stand-in for the Windows agent: an x86-64 PE image's headers, then `tag`.
pub fn pe_stand_in(tag: &str) -> Vec<u8> {
    let mut h = vec![0u8; 136];
    h[..2].copy_from_slice(b"MZ");
    h[0x3c..0x40].copy_from_slice(&128u32.to_le_bytes());
    h[128..132].copy_from_slice(b"PE\0\0");
    h[132..134].copy_from_slice(&0x8664u16.to_le_bytes());
    h.extend_from_slice(tag.as_bytes());
    h
}

/// Runs the carryover binary.
pub fn carryover(args: &[&str]) -> Output {
    carryover_env(args, &[])
}

pub fn carryover_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = agent_command();
    c.args(args);
    clean_env(&mut c, env);
    c.output().unwrap()
}

/// The environment every run of the binary gets: no crash hooks, no AWS settings of the
/// machine running the tests, then `env`.
fn clean_env(c: &mut Command, env: &[(&str, &str)]) {
    c.env_remove("CARRYOVER_TEST_CRASH_AFTER_STEP")
        .env_remove("CARRYOVER_TEST_CRASH_IN_PRUNE")
        .env_remove("CARRYOVER_TEST_AFTER_STEP")
        .env_remove("CARRYOVER_TEST_FLUSH_FAILS")
        .env_remove("CARRYOVER_TEST_CRASH_BEFORE_RENAME")
        .env_remove("CARRYOVER_TEST_BEFORE_FILE");
    for v in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
    ] {
        c.env_remove(v);
    }
    for (k, v) in env {
        c.env(k, v);
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", stdout(o), stderr(o)))
}

/// The step `name` of a restore's JSON result.
pub fn step<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name}"))
}

/// The health check `name` of a restore's JSON result.
pub fn health<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["health"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == name)
        .unwrap_or_else(|| panic!("no health check {name}: {}", v["health"]))
}

/// The JSON result of a command that must have exited 0.
pub fn json_ok(o: &Output) -> serde_json::Value {
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(o), stderr(o));
    json(o)
}

/// Captures `old` into `store`, checks the result's shape, returns the snapshot id.
pub fn capture(old: &Path, store: &Path) -> String {
    let o = Cmd::new("capture").root(old).store(store).json().run();
    assert_eq!(
        o.status.code(),
        Some(0),
        "capture: {}\n{}",
        stdout(&o),
        stderr(&o)
    );
    let v = json(&o);
    assert_eq!(v["instance_id"], INSTANCE);
    for k in [
        "snapshot_id",
        "instance_id",
        "files",
        "bytes",
        "stored_bytes",
        "skipped",
        "findings",
    ] {
        assert!(v.get(k).is_some(), "capture JSON lacks {k}");
    }
    v["snapshot_id"].as_str().unwrap().to_string()
}

/// A Debian 12 ECS that an operator has set up over the years.
pub fn old_debian(dir: &Path) -> Tree {
    let t = Tree::new(dir);
    t.file("/etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nID=debian\n")
        .file("/sys/class/dmi/id/product_uuid", "4C4C4544-0042-3510-8053-B4C04F4A4D32\n")
        .file("/etc/machine-id", "0123456789abcdef0123456789abcdef\n")
        .file("/proc/sys/kernel/osrelease", "6.1.0-18-cloud-amd64\n")
        .file("/etc/hostname", "web01\n")
        .file("/etc/hosts", "127.0.0.1\tlocalhost\n127.0.1.1\tweb01.prod.example.com\tweb01\n10.0.0.5\tdb01.internal db01\n\n# The following lines are desirable for IPv6 capable hosts\n::1     localhost ip6-localhost ip6-loopback\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n")
        .file("/etc/resolv.conf", "domain prod.example.com\nsearch prod.example.com\nnameserver 10.0.0.2\nnameserver 10.0.0.3\noptions timeout:2\n")
        .file("/etc/network/interfaces", "source /etc/network/interfaces.d/*\nauto lo\niface lo inet loopback\n")
        .file("/etc/network/interfaces.d/50-cloud-init", "auto eth0\niface eth0 inet dhcp\n    dns-nameservers 10.0.0.2 10.0.0.3\n    dns-search prod.example.com\n")
        .file("/etc/fstab", "# /etc/fstab: static file system information.\nUUID=0a1b2c3d-1111-2222-3333-444455556666 / ext4 rw,discard,errors=remount-ro,x-systemd.growfs 0 1\nUUID=7E1F-1A2B /boot/efi vfat defaults 0 0\nUUID=aaaaaaaa-1111-4222-8333-bbbbbbbbbbbb /srv ext4 defaults 0 2\n/dev/mapper/datavg-lvdata /data ext4 defaults,noatime 0 2\nUUID=5F1E3C2B4A596D70 /mnt/win ntfs-3g defaults,uid=1000 0 0\n/dev/vdc2 none swap sw 0 0\ntmpfs /tmp tmpfs defaults,size=1g 0 0\n")
        .file("/etc/login.defs", "MAIL_DIR        /var/mail\nUID_MIN                  1000\nUID_MAX                 60000\nGID_MIN                  1000\nGID_MAX                 60000\n")
        .file("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n_chrony:x:100:102:Chrony daemon,,,:/var/lib/chrony:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nalice:x:1000:1000:Alice Ops,,,:/home/alice:/bin/bash\nbob:x:1001:1001::/home/bob:/bin/sh\n")
        .file("/etc/group", "root:x:0:\nsudo:x:27:alice\ncrontab:x:101:\n_chrony:x:102:\nusers:x:100:\nnogroup:x:65534:\nalice:x:1000:\nbob:x:1001:\ndevs:x:2000:alice,bob\n")
        .file_mode("/etc/shadow", "root:*:19700:0:99999:7:::\ndaemon:*:19700:0:99999:7:::\nalice:$6$rounds=5000$salt$HASHEDPASSWORD:19750:0:99999:7:::\nbob:!:19750:0:99999:7:::\n", 0o640)
        .file_mode("/etc/gshadow", "root:*::\nsudo:*::alice\nalice:!::\nbob:!::\ndevs:!::alice,bob\n", 0o640)
        // systemd: a custom service, a custom timer, a drop-in on a vendor unit, a mask
        .file("/lib/systemd/system/ssh.service", "[Unit]\nDescription=OpenBSD Secure Shell server\n[Service]\nExecStart=/usr/sbin/sshd -D\n[Install]\nWantedBy=multi-user.target\nAlias=sshd.service\n")
        .file("/lib/systemd/system/getty@.service", "[Unit]\nDescription=Getty on %I\n")
        .file("/lib/systemd/system/networking.service", "[Unit]\nDescription=Raise network interfaces\n")
        .file("/lib/systemd/system/chrony.service", "[Unit]\nDescription=chrony\n")
        .file("/lib/systemd/system/nginx.service", "[Unit]\nDescription=nginx\n")
        .file("/etc/systemd/system/app.service", "[Unit]\nDescription=The business app\nAfter=network-online.target\n[Service]\nExecStart=/srv/app/bin/app --config /srv/app/app.toml\nUser=alice\n[Install]\nWantedBy=multi-user.target\n")
        .file("/etc/systemd/system/backup.service", "[Unit]\nDescription=Nightly backup\n[Service]\nType=oneshot\nExecStart=/usr/local/bin/backup.sh\n")
        .file("/etc/systemd/system/backup.timer", "[Timer]\nOnCalendar=daily\n[Install]\nWantedBy=timers.target\n")
        .file("/etc/systemd/system/nginx.service.d/override.conf", "[Service]\nLimitNOFILE=65536\n")
        .link("/etc/systemd/system/multi-user.target.wants/app.service", "/etc/systemd/system/app.service")
        .link("/etc/systemd/system/multi-user.target.wants/ssh.service", "/lib/systemd/system/ssh.service")
        .link("/etc/systemd/system/multi-user.target.wants/networking.service", "/lib/systemd/system/networking.service")
        .link("/etc/systemd/system/multi-user.target.wants/chrony.service", "/lib/systemd/system/chrony.service")
        .link("/etc/systemd/system/getty.target.wants/getty@tty1.service", "/lib/systemd/system/getty@.service")
        .link("/etc/systemd/system/timers.target.wants/backup.timer", "/etc/systemd/system/backup.timer")
        .link("/etc/systemd/system/sshd.service", "/lib/systemd/system/ssh.service")
        .link("/etc/systemd/system/apt-daily.service", "/dev/null")
        // cron
        .file("/etc/crontab", "SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin\n17 *\t* * *\troot\tcd / && run-parts --report /etc/cron.hourly\n30 2 * * * root /usr/local/bin/rotate-app-logs\n")
        .file("/etc/cron.d/app-backup", "MAILTO=ops@example.com\n15 3 * * * root /usr/local/bin/backup.sh\n")
        .file("/etc/cron.d/e2scrub_all", "30 3 * * 0 root test -e /run/systemd/system || SERVICE_MODE=1 /usr/lib/x86_64-linux-gnu/e2fsprogs/e2scrub_all_cron\n")
        .file_mode("/etc/cron.daily/app-report", "#!/bin/sh\n/srv/app/bin/report\n", 0o755)
        .file_mode("/var/spool/cron/crontabs/alice", "# DO NOT EDIT THIS FILE\n*/10 * * * * /home/alice/bin/poll\n", 0o600)
        .file("/var/lib/dpkg/info/e2fsprogs.list", "/.\n/etc\n/etc/cron.d\n/etc/cron.d/e2scrub_all\n")
        .file("/var/lib/dpkg/info/procps.list", "/etc/sysctl.d\n/etc/sysctl.d/README.sysctl\n")
        .file("/var/lib/dpkg/status", "Package: bash\nStatus: install ok installed\n\nPackage: nginx\nStatus: install ok installed\n\nPackage: chrony\nStatus: install ok installed\n\nPackage: removed-one\nStatus: deinstall ok config-files\n")
        // ssh host keys
        .file_mode("/etc/ssh/ssh_host_ed25519_key", ED25519_KEY, 0o600)
        .file("/etc/ssh/ssh_host_ed25519_key.pub", &format!("{ED25519_PUB}\n"))
        // time
        .file("/usr/share/zoneinfo/Asia/Shanghai", "TZif2-shanghai")
        .link("/etc/localtime", "/usr/share/zoneinfo/Asia/Shanghai")
        .file("/etc/timezone", "Asia/Shanghai\n")
        .file("/etc/chrony/chrony.conf", "# Use Debian vendor zone.\npool 2.debian.pool.ntp.org iburst\nserver ntp.myhuaweicloud.com iburst\nkeyfile /etc/chrony/chrony.keys\n")
        // sysctl
        .file("/etc/sysctl.d/60-app.conf", "net.core.somaxconn = 4096\nvm.max_map_count = 262144\n")
        .link("/etc/sysctl.d/99-sysctl.conf", "../sysctl.conf")
        .file("/etc/sysctl.conf", "# /etc/sysctl.conf - Configuration file\n#kernel.domainname = example.com\nvm.swappiness = 10\n");
    t
}

/// A fresh Ubuntu 22.04 cloud image, before its first boot: systemd-resolved with the
/// stub, netplan, timesyncd, cloud-init.
pub fn new_ubuntu(dir: &Path) -> Tree {
    let t = Tree::new(dir);
    t.file("/etc/os-release", "PRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\nID=ubuntu\nID_LIKE=debian\n")
        .file("/sys/class/dmi/id/product_uuid", "4C4C4544-0042-3510-8053-B4C04F4A4D32\n")
        .file("/etc/hostname", "ubuntu\n")
        .file("/etc/hosts", "127.0.0.1 localhost\n127.0.1.1 ubuntu\n\n# The following lines are desirable for IPv6 capable hosts\n::1 ip6-localhost ip6-loopback\nfe00::0 ip6-localnet\nff00::0 ip6-mcastprefix\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n")
        .file("/run/systemd/resolve/stub-resolv.conf", "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n")
        .link("/etc/resolv.conf", "../run/systemd/resolve/stub-resolv.conf")
        .file("/etc/netplan/50-cloud-init.yaml", "network:\n    ethernets:\n        eth0:\n            dhcp4: true\n    version: 2\n")
        .file("/etc/cloud/cloud.cfg", "users:\n   - default\n")
        .dir("/etc/cloud/cloud.cfg.d")
        .file("/etc/fstab", "LABEL=cloudimg-rootfs\t/\t ext4\tdiscard,errors=remount-ro\t0 1\nLABEL=UEFI\t/boot/efi\tvfat\tumask=0077\t0 1\n")
        .file("/etc/login.defs", "UID_MIN 1000\nUID_MAX 60000\nGID_MIN 1000\nGID_MAX 60000\n")
        .file("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nsystemd-timesync:x:104:105::/run/systemd:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
        .file("/etc/group", "root:x:0:\nsudo:x:27:\nusers:x:100:\ncrontab:x:107:\nsystemd-timesync:x:105:\nnogroup:x:65534:\n")
        .file_mode("/etc/shadow", "root:*:19800:0:99999:7:::\ndaemon:*:19800:0:99999:7:::\n", 0o640)
        .file_mode("/etc/gshadow", "root:*::\nsudo:*::\ncrontab:*::\n", 0o640)
        .link("/lib", "usr/lib")
        .file("/usr/lib/systemd/system/ssh.service", "[Unit]\nDescription=OpenBSD Secure Shell server\n")
        .file("/usr/lib/systemd/system/getty@.service", "[Unit]\nDescription=Getty on %I\n")
        .file("/usr/lib/systemd/system/nginx.service", "[Unit]\nDescription=nginx\n")
        .file("/usr/lib/systemd/system/systemd-timesyncd.service", "[Unit]\nDescription=Network Time Synchronization\n")
        .file("/usr/lib/systemd/system/systemd-resolved.service", "[Unit]\nDescription=Network Name Resolution\n")
        .link("/etc/systemd/system/multi-user.target.wants/systemd-resolved.service", "/lib/systemd/system/systemd-resolved.service")
        .link("/etc/systemd/system/sysinit.target.wants/systemd-timesyncd.service", "/lib/systemd/system/systemd-timesyncd.service")
        .file("/etc/crontab", "SHELL=/bin/sh\n17 *\t* * *\troot\tcd / && run-parts --report /etc/cron.hourly\n")
        .file("/usr/sbin/cron", "")
        .dir("/var/spool/cron/crontabs")
        .file_mode("/etc/ssh/ssh_host_ed25519_key", "IMAGE-KEY\n", 0o600)
        .file("/etc/ssh/ssh_host_ed25519_key.pub", "ssh-ed25519 AAAAIMAGE image\n")
        .file("/usr/share/zoneinfo/Asia/Shanghai", "TZif2-shanghai")
        .file("/usr/share/zoneinfo/Etc/UTC", "TZif2-utc")
        .link("/etc/localtime", "/usr/share/zoneinfo/Etc/UTC")
        .file("/etc/timezone", "Etc/UTC\n")
        .file("/etc/sysctl.d/10-network-security.conf", "net.ipv4.conf.default.rp_filter=2\n")
        .file("/var/lib/dpkg/status", "Package: bash\nStatus: install ok installed\n\nPackage: cloud-init\nStatus: install ok installed\n");
    t
}

/// A fresh Rocky Linux 9 image: NetworkManager writes resolv.conf, chrony, Red Hat's
/// cron spool, and a default user that already has uid 1000.
pub fn new_rocky(dir: &Path) -> Tree {
    let t = Tree::new(dir);
    t.file("/etc/os-release", "NAME=\"Rocky Linux\"\nVERSION_ID=\"9.3\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n")
        .file("/sys/class/dmi/id/product_uuid", "4C4C4544-0042-3510-8053-B4C04F4A4D32\n")
        .file("/etc/hostname", "localhost.localdomain\n")
        .file("/etc/hosts", "127.0.0.1   localhost localhost.localdomain localhost4 localhost4.localdomain4\n::1         localhost localhost.localdomain localhost6 localhost6.localdomain6\n")
        .file("/etc/resolv.conf", "# Generated by NetworkManager\nnameserver 100.125.1.250\n")
        .file("/etc/NetworkManager/NetworkManager.conf", "[main]\n")
        .file("/etc/fstab", "UUID=9e0b6f3e-rocky-root / xfs defaults 0 0\n")
        .file("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\nrocky:x:1000:1000:Cloud User:/home/rocky:/bin/bash\n")
        .file("/etc/group", "root:x:0:\nwheel:x:10:rocky\nrocky:x:1000:\n")
        .file_mode("/etc/shadow", "root:*:19800:0:99999:7:::\nrocky:!!:19800:0:99999:7:::\n", 0o000)
        .file("/usr/lib/systemd/system/sshd.service", "[Unit]\nDescription=OpenSSH server daemon\n")
        .file("/usr/lib/systemd/system/chronyd.service", "[Unit]\nDescription=NTP client/server\n")
        .file("/etc/chrony.conf", "pool 2.rocky.pool.ntp.org iburst\ndriftfile /var/lib/chrony/drift\n")
        .file("/etc/crontab", "SHELL=/bin/bash\nPATH=/sbin:/bin:/usr/sbin:/usr/bin\nMAILTO=root\n")
        .file("/usr/sbin/crond", "")
        .dir("/var/spool/cron")
        .dir("/etc/ssh")
        .file("/usr/share/zoneinfo/Asia/Shanghai", "TZif2-shanghai")
        .link("/etc/localtime", "../usr/share/zoneinfo/UTC");
    t
}

/// An Ubuntu 22.04 server: the image's `ubuntu` 1000, then `alice` 1001 and `deploy`
/// 1002; an unprivileged `debian` 1003 (a name the new image uses for its sudo user).
pub fn old_ubuntu(dir: &std::path::Path) -> Tree {
    let t = old_debian(dir);
    t.file("/etc/os-release", "NAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\nID=ubuntu\nID_LIKE=debian\n")
        .file("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nsshd:x:105:65534::/run/sshd:/usr/sbin/nologin\nubuntu:x:1000:1000:Ubuntu:/home/ubuntu:/bin/bash\nalice:x:1001:1001::/home/alice:/bin/bash\ndeploy:x:1002:1002::/home/deploy:/bin/bash\ndebian:x:1003:1003::/home/debian:/bin/sh\n")
        .file("/etc/group", "root:x:0:\nsudo:x:27:ubuntu\nubuntu:x:1000:\nalice:x:1001:\ndeploy:x:1002:\ndebian:x:1003:\ndevs:x:2000:alice,deploy,debian\n")
        .file_mode("/etc/shadow", "root:*:19700:0:99999:7:::\nubuntu:!:19750:0:99999:7:::\nalice:!:19750:0:99999:7:::\ndeploy:!:19750:0:99999:7:::\ndebian:!:19750:0:99999:7:::\n", 0o640)
        .file_mode("/etc/gshadow", "root:*::\nsudo:*::ubuntu\nubuntu:!::\nalice:!::\ndeploy:!::\ndebian:!::\ndevs:!::alice,deploy,debian\n", 0o640);
    t
}

/// A Debian 12 image: its `debian` 1000 in sudo.
pub fn new_debian(dir: &std::path::Path) -> Tree {
    let t = new_ubuntu(dir);
    t.file("/etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n")
        .file("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\ndebian:x:1000:1000:Debian:/home/debian:/bin/bash\n")
        .file("/etc/group", "root:x:0:\nsudo:x:27:debian\nusers:x:100:\ndebian:x:1000:\n")
        .file_mode("/etc/shadow", "root:*:19800:0:99999:7:::\ndebian:!:19800:0:99999:7:::\n", 0o640)
        .file_mode("/etc/gshadow", "root:*::\nsudo:*::debian\ndebian:!::\n", 0o640)
        .file("/home/debian/.bashrc", "# the image user's\n");
    chown(t.p("/home/debian/.bashrc"), Some(1000), Some(1000)).unwrap();
    t
}

/// Rocky 9's /etc/sudoers, as shipped (the lines that are not comments, and some that are).
pub const ROCKY_SUDOERS: &str = "## Sudoers allows particular users to run various commands as\nDefaults   !visiblepw\nDefaults    always_set_home\nDefaults    match_group_by_gid\nDefaults    env_reset\nDefaults    secure_path = /sbin:/bin:/usr/sbin:/usr/bin\n## Allow root to run any commands anywhere\nroot\tALL=(ALL) \tALL\n## Allows people in group wheel to run all commands\n%wheel\tALL=(ALL)\tALL\n## Read drop-in files from /etc/sudoers.d (the # here does not mean a comment)\n#includedir /etc/sudoers.d\n";

/// Ubuntu 24.04's /etc/sudoers, as shipped.
pub const UBUNTU_SUDOERS: &str = "Defaults\tenv_reset\nDefaults\tmail_badpass\nDefaults\tsecure_path=\"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/snap/bin\"\nDefaults\tuse_pty\n# User privilege specification\nroot\tALL=(ALL:ALL) ALL\n# Members of the admin group may gain root privileges\n%admin ALL=(ALL) ALL\n# Allow members of group sudo to execute any command\n%sudo\tALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n";

/// A Rocky Linux 9 server: the image's `rocky` 1000 and an operator `alice` 1001, both in
/// `wheel`; sudo rules in /etc/sudoers (with a command alias) and in /etc/sudoers.d.
pub fn old_rocky(dir: &Path) -> Tree {
    let t = new_rocky(dir);
    t.file("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\nsshd:x:74:74:Privilege-separated SSH:/usr/share/empty.sshd:/sbin/nologin\nrocky:x:1000:1000:Cloud User:/home/rocky:/bin/bash\nalice:x:1001:1001::/home/alice:/bin/bash\n")
        .file("/etc/group", "root:x:0:\nwheel:x:10:rocky,alice\nrocky:x:1000:\nalice:x:1001:\nops:x:2000:alice\n")
        .file_mode("/etc/shadow", "root:*:19800:0:99999:7:::\nrocky:!!:19800:0:99999:7:::\nalice:!!:19800:0:99999:7:::\n", 0o000)
        .file_mode("/etc/sudoers", &ROCKY_SUDOERS.replace("## Read drop-in", "Cmnd_Alias SERVICES = /usr/bin/systemctl, \\\n    /usr/bin/journalctl\nCmnd_Alias NETWORK = /usr/sbin/ip\nalice\tALL=(ALL)\tNOPASSWD: SERVICES\n## Read drop-in"), 0o440)
        .file_mode("/etc/sudoers.d/90-cloud-init-users", "\n# Created by cloud-init v. 23.4 on Tue, 01 Oct 2024 08:00:00 +0000\n\n# User rules for rocky\nrocky ALL=(ALL) NOPASSWD:ALL\n", 0o440)
        .file_mode("/etc/sudoers.d/ops", "%ops ALL=(root) /usr/bin/journalctl\nDefaults:alice !requiretty\n", 0o440);
    t
}

/// An Ubuntu 24.04 image: `ubuntu` 1000 in `sudo`, cloud-init's sudoers file for it.
pub fn new_ubuntu24(dir: &Path) -> Tree {
    let t = new_ubuntu(dir);
    t.file("/etc/os-release", "PRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"24.04\"\nID=ubuntu\nID_LIKE=debian\n")
        .file("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nubuntu:x:1000:1000:Ubuntu:/home/ubuntu:/bin/bash\n")
        .file("/etc/group", "root:x:0:\nadm:x:4:syslog,ubuntu\nsudo:x:27:ubuntu\nusers:x:100:\nubuntu:x:1000:\n")
        .file_mode("/etc/shadow", "root:*:19800:0:99999:7:::\nubuntu:!:19800:0:99999:7:::\n", 0o640)
        .file_mode("/etc/gshadow", "root:*::\nadm:*::syslog,ubuntu\nsudo:*::ubuntu\nubuntu:!::\n", 0o640)
        .link("/usr/share/zoneinfo/UTC", "Etc/UTC")
        .file_mode("/etc/sudoers", UBUNTU_SUDOERS, 0o440)
        .file_mode("/etc/sudoers.d/README", "#\n# The default /etc/sudoers file created on installation of the\n# sudo  package now includes the directive:\n#\n#\t@includedir /etc/sudoers.d\n", 0o440)
        .file_mode("/etc/sudoers.d/90-cloud-init-users", "# Created by cloud-init v. 24.1.3 on Mon, 02 Dec 2024 10:00:00 +0000\n\n# User rules for ubuntu\nubuntu ALL=(ALL) NOPASSWD:ALL\n", 0o440);
    t
}

/// A user's uid in a passwd text.
pub fn uid_in(passwd: &str, name: &str) -> u32 {
    passwd
        .lines()
        .find(|l| l.starts_with(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {passwd}"))
        .split(':')
        .nth(2)
        .unwrap()
        .parse()
        .unwrap()
}

/// Edits the state of snapshot `id` in place; `rehash` makes the manifest's checksum
/// match again (a planted snapshot rather than a damaged one).
pub fn tamper(
    store: &std::path::Path,
    id: &str,
    edit: impl Fn(&mut serde_json::Value),
    rehash: bool,
) {
    let state_path = store.join(format!("objects/{id}/state.json"));
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    edit(&mut v);
    let bytes = serde_json::to_vec(&v).unwrap();
    std::fs::write(&state_path, &bytes).unwrap();
    if rehash {
        let mpath = store.join(format!("snapshots/{id}.json"));
        let mut m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
        m["state"]["size"] = bytes.len().into();
        m["state"]["blake3"] = blake3::hash(&bytes).to_hex().to_string().into();
        std::fs::write(&mpath, serde_json::to_vec(&m).unwrap()).unwrap();
    }
}

/// `carryover restore --root NEW --store STORE --format json` plus `extra`, with `env`.
pub fn restore(
    new: &Path,
    store: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let c = Cmd::new("restore")
        .root(new)
        .store(store)
        .json()
        .args(extra);
    env.iter().fold(c, |c, (k, v)| c.env(k, v)).run()
}

/// A plain HTTP server on loopback for the test's life: each GET's path goes to `answer`,
/// which gives the status line's tail (`200 OK`) and the body. Returns the port.
pub fn serve_get(answer: impl Fn(&str) -> (&'static str, String) + Send + 'static) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in l.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
            }
            let (status, body) = answer(line.split_whitespace().nth(1).unwrap_or(""));
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

#[path = "../common/cmd.rs"]
mod cmd;
pub use cmd::Cmd;

/// Runs a built command to its end.
fn output(c: &mut Command) -> Output {
    c.output().unwrap()
}

/// Asserts a process's exit code, showing its output when it differs.
macro_rules! assert_exit {
    ($o:expr, $code:expr) => {{
        let o = &$o;
        assert_eq!(
            o.status.code(),
            $code,
            "stdout: {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }};
}

/// Pseudo-random bytes (incompressible: stored as they are, so a test can find them in
/// a pack).
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e3779b97f4a7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
