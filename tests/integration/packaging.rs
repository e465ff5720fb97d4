//! The shipped units pass `systemd-analyze verify` (on a tree with the system's own units,
//! the binary in place), and `packaging/build` makes a .deb and an .rpm holding the
//! binary, the units, the tmpfiles entry, the root-only conffile and the docs, whose
//! scripts enable the restore unit and the report timer. (Installing the .deb into a
//! debootstrapped Debian is part of the VM test, tests/vm/run.) `packaging/build-windows`
//! makes the MSI (service, agent, config) and the zip, read back with msitools.
//! The packages are for the binary's own architecture and declare the glibc it needs, no
//! more; `packaging/check-glibc` refuses a binary that needs more than glibc 2.17. With
//! `CARRYOVER_TEST_BIN` (`.ci/run`: the x86_64 and the aarch64 agents of
//! `packaging/build-linux`) these tests package and run that build instead.

use std::path::Path;
use std::process::Command;

use super::fixtures::*;

const UNITS: &[&str] = &[
    "carryover-restore.service",
    "carryover-report.service",
    "carryover-report.timer",
    "carryover-capture.service",
];

fn top() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The architecture an ELF binary is for, in Debian's and in RPM's words.
fn package_arch(bin: &Path) -> (&'static str, &'static str) {
    match elf_arch(bin) {
        "x86_64" => ("amd64", "x86_64"),
        _ => ("arm64", "aarch64"),
    }
}

/// The highest `GLIBC_x.y[.z]` version among the binary's undefined dynamic symbols.
fn glibc_needed(bin: &Path) -> String {
    let dump = run(Command::new("objdump").arg("-T").arg(bin));
    dump.lines()
        .filter(|l| l.contains("*UND*"))
        .flat_map(|l| l.split_whitespace())
        .filter_map(|w| w.trim_matches(['(', ')']).strip_prefix("GLIBC_"))
        .filter(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .map(|v| {
            v.split('.')
                .map(|n| n.parse::<u32>().unwrap())
                .collect::<Vec<_>>()
        })
        .max()
        .map(|v| v.iter().map(u32::to_string).collect::<Vec<_>>().join("."))
        .expect("a dynamically linked binary")
}

fn run(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn units_pass_systemd_analyze_verify() {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path();
    let sys = tree.join("usr/lib/systemd/system");
    std::fs::create_dir_all(tree.join("usr/bin")).unwrap();
    std::fs::create_dir_all(tree.join("usr/lib/systemd")).unwrap();
    std::fs::create_dir_all(tree.join("tmp")).unwrap();
    run(Command::new("cp")
        .arg("-a")
        .arg("/usr/lib/systemd/system")
        .arg(tree.join("usr/lib/systemd")));
    std::fs::copy(agent_bin(), tree.join("usr/bin/carryover")).unwrap();
    let mut args = vec![format!("--root={}", tree.display())];
    for u in UNITS {
        std::fs::copy(top().join("systemd").join(u), sys.join(u)).unwrap();
        args.push(format!("/usr/lib/systemd/system/{u}"));
    }
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .args(&args)
        .output()
        .unwrap();
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // regression (VM): a degraded restore failed the unit and systemd killed its cgroup,
    // the ntfs-3g daemon of the NTFS data disk that restore had mounted with it
    let restore = std::fs::read_to_string(top().join("systemd/carryover-restore.service")).unwrap();
    assert!(restore.lines().any(|l| l.trim() == "KillMode=process"));
    // and it does catch a broken unit
    std::fs::write(
        sys.join("carryover-restore.service"),
        "[Service]\nExecStart=/usr/bin/carryover-missing restore\n",
    )
    .unwrap();
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .args(&args)
        .output()
        .unwrap();
    assert!(!o.status.success() || !o.stderr.is_empty());
}

#[test]
fn deb_and_rpm_hold_the_agent_units_and_a_root_only_config() {
    let t = tempfile::tempdir().unwrap();
    run(Command::new(top().join("packaging/build"))
        .arg(agent_bin())
        .arg(t.path()));
    let find = |ext: &str| {
        std::fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == ext))
            .unwrap_or_else(|| panic!("no .{ext}"))
    };
    let (deb, rpm) = (find("deb"), find("rpm"));
    // for the binary's architecture, requiring the glibc it needs and no newer one
    let (debarch, rpmarch) = package_arch(&agent_bin());
    let glibc = glibc_needed(&agent_bin());
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        deb.file_name().unwrap().to_str().unwrap(),
        format!("carryover_{version}_{debarch}.deb")
    );
    assert_eq!(
        rpm.file_name().unwrap().to_str().unwrap(),
        format!("carryover-{version}-1.{rpmarch}.rpm")
    );
    let field = |name: &str| run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(name));
    assert_eq!(field("Architecture").trim(), debarch);
    assert_eq!(field("Depends").trim(), format!("libc6 (>= {glibc})"));
    let arch = run(Command::new("rpm")
        .args(["-qp", "--qf", "%{ARCH}"])
        .arg(&rpm));
    assert_eq!(arch, rpmarch);
    let requires = run(Command::new("rpm").args(["-qp", "--requires"]).arg(&rpm));
    let mut glibc_reqs: Vec<&str> = requires
        .lines()
        .filter(|l| l.contains("glibc") || l.contains("GLIBC"))
        .collect();
    glibc_reqs.sort();
    assert_eq!(
        glibc_reqs,
        [
            format!("glibc >= {glibc}"),
            format!("libc.so.6(GLIBC_{glibc})(64bit)")
        ],
        "{requires}"
    );
    // CentOS 7's rpm 4.11 reads it: no zstd payload, no rpmlib feature newer than that
    let payload = run(Command::new("rpm")
        .args(["-qp", "--qf", "%{PAYLOADCOMPRESSOR}"])
        .arg(&rpm));
    assert!(["gzip", "xz"].contains(&payload.as_str()), "{payload}");
    assert!(!requires.contains("PayloadIsZstd"), "{requires}");

    let listing = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    let mode_of = |path: &str| -> String {
        listing
            .lines()
            .find(|l| l.ends_with(&format!(" .{path}")) || l.ends_with(&format!(" .{path}/")))
            .unwrap_or_else(|| panic!("{path} not in the .deb:\n{listing}"))
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(mode_of("/usr/bin/carryover"), "-rwxr-xr-x root/root");
    assert_eq!(
        mode_of("/etc/carryover/config.toml"),
        "-rw------- root/root"
    );
    assert_eq!(mode_of("/etc/carryover"), "drwx------ root/root");
    assert_eq!(mode_of("/var/lib/carryover"), "drwx------ root/root");
    for u in UNITS {
        assert_eq!(
            mode_of(&format!("/usr/lib/systemd/system/{u}")),
            "-rw-r--r-- root/root"
        );
    }
    mode_of("/usr/lib/tmpfiles.d/carryover.conf");
    mode_of("/usr/share/doc/carryover/README.md");
    // what an ecosystem package ships: copyright, completions, the manual page, a preset
    for f in [
        "/usr/share/doc/carryover/copyright",
        "/usr/share/bash-completion/completions/carryover",
        "/usr/share/zsh/vendor-completions/_carryover",
        "/usr/share/fish/vendor_completions.d/carryover.fish",
        "/usr/share/man/man1/carryover.1.gz",
        "/usr/share/man/man1/carryover-status.1.gz",
        "/usr/share/man/man1/carryover-snapshots-list.1.gz",
        "/usr/lib/systemd/system-preset/80-carryover.preset",
    ] {
        assert_eq!(mode_of(f), "-rw-r--r-- root/root", "{f}");
    }
    let conffiles = run(Command::new("dpkg-deb")
        .args(["-I"])
        .arg(&deb)
        .arg("conffiles"));
    assert_eq!(conffiles.trim(), "/etc/carryover/config.toml");
    let postinst = run(Command::new("dpkg-deb")
        .args(["-I"])
        .arg(&deb)
        .arg("postinst"));
    assert!(postinst.contains("systemctl preset carryover-restore.service carryover-report.timer"));

    let dump = run(Command::new("rpm").args(["-qp", "--dump"]).arg(&rpm));
    let rpm_line = |path: &str| {
        dump.lines()
            .find(|l| l.starts_with(&format!("{path} ")))
            .unwrap_or_else(|| panic!("{path} not in the .rpm:\n{dump}"))
            .to_string()
    };
    // --dump: path size mtime digest mode owner group isconfig isdoc rdev symlink
    let f: Vec<String> = rpm_line("/etc/carryover/config.toml")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(
        (f[4].as_str(), f[5].as_str(), f[7].as_str()),
        ("0100600", "root", "1")
    );
    let f: Vec<String> = rpm_line("/usr/bin/carryover")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(f[4], "0100755");
    for u in UNITS {
        rpm_line(&format!("/usr/lib/systemd/system/{u}"));
    }
    let scripts = run(Command::new("rpm").args(["-qp", "--scripts"]).arg(&rpm));
    assert!(scripts.contains("systemctl preset carryover-restore.service carryover-report.timer"));
    rpm_line("/usr/lib/systemd/system-preset/80-carryover.preset");
    rpm_line("/usr/share/man/man1/carryover.1.gz");
    // the packaged binary runs
    let extracted = t.path().join("x");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&extracted));
    let o = runner_command(&extracted.join("usr/bin/carryover"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(stdout(&o).starts_with("carryover "), "{}", stdout(&o));
    // the preset enables both units; the completion script and the page are the CLI's
    let preset = std::fs::read_to_string(
        extracted.join("usr/lib/systemd/system-preset/80-carryover.preset"),
    )
    .unwrap();
    assert_eq!(
        preset,
        "enable carryover-restore.service\nenable carryover-report.timer\n"
    );
    let bash =
        std::fs::read_to_string(extracted.join("usr/share/bash-completion/completions/carryover"))
            .unwrap();
    assert!(
        bash.contains("snapshots") && bash.contains("--dry-run"),
        "{bash}"
    );
    let man = run(Command::new("sh").arg("-c").arg(format!(
        "gzip -dc {} | head -20",
        extracted
            .join("usr/share/man/man1/carryover.1.gz")
            .display()
    )));
    assert!(man.contains(".TH carryover 1"), "{man}");
    // a page per subcommand, as the main page's SEE ALSO names them, with its options
    let status = run(Command::new("sh").arg("-c").arg(format!(
        "gzip -dc {}",
        extracted
            .join("usr/share/man/man1/carryover-status.1.gz")
            .display()
    )));
    assert!(
        status.contains(".TH carryover-status 1") && status.contains("\\-\\-wait"),
        "{status}"
    );
}

#[test]
fn check_glibc_refuses_a_binary_that_needs_more_than_glibc_2_17() {
    // this test build is linked on this machine (Debian 12, glibc 2.36): it needs
    // __libc_start_main@GLIBC_2.34, which CentOS 7 lacks
    let host = Path::new(env!("CARGO_BIN_EXE_carryover"));
    let o = Command::new(top().join("packaging/check-glibc"))
        .arg(host)
        .output()
        .unwrap();
    assert_exit!(o, Some(1));
    assert!(
        stderr(&o).contains("needs glibc above 2.17") && stderr(&o).contains("@GLIBC_2.34"),
        "{}",
        stderr(&o)
    );
    let o = Command::new(top().join("packaging/check-glibc"))
        .args(["--max", "2.34"])
        .arg(host)
        .output()
        .unwrap();
    assert_exit!(o, Some(0));
    assert!(stdout(&o).contains("needs GLIBC_2.34"), "{}", stdout(&o));
    // a build for the 2.17 baseline passes (CARRYOVER_TEST_BIN: packaging/build-linux's)
    if agent_bin() != host {
        let o = Command::new(top().join("packaging/check-glibc"))
            .arg(agent_bin())
            .output()
            .unwrap();
        assert_exit!(o, Some(0));
        assert_eq!(glibc_needed(&agent_bin()), "2.17");
    }
}

/// The MSI's tables as `msiinfo export` prints them.
fn msi_table(msi: &Path, table: &str) -> String {
    run(Command::new("msiinfo").arg("export").arg(msi).arg(table))
}

#[test]
fn the_windows_msi_and_zip_hold_the_agent_service_and_config() {
    // The package's layout, read back with msitools; that it installs, registers the
    // service and uninstalls is the Windows suite's test (msiexec under Wine).
    let t = tempfile::tempdir().unwrap();
    let exe = t.path().join("carryover.exe");
    std::fs::write(&exe, b"MZ stand-in for the Windows build").unwrap();
    let out = t.path().join("out");
    let made = run(Command::new(top().join("packaging/build-windows"))
        .arg(&exe)
        .arg(&out));
    let msi = out.join(format!("carryover-{}-x64.msi", env!("CARGO_PKG_VERSION")));
    let zip = out.join(format!(
        "carryover-{}-windows-x64.zip",
        env!("CARGO_PKG_VERSION")
    ));
    assert!(
        made.contains(msi.to_str().unwrap()) && zip.is_file(),
        "{made}"
    );
    let service = msi_table(&msi, "ServiceInstall");
    let row = service
        .lines()
        .find(|l| l.starts_with("CarryoverService\t"))
        .unwrap_or_else(|| panic!("{service}"));
    let cols: Vec<&str> = row.split('\t').collect();
    assert_eq!(cols[1], "carryover");
    assert_eq!(cols[3], "16", "own process");
    assert_eq!(cols[4], "2", "automatic start");
    assert_eq!(cols[8], "LocalSystem");
    assert_eq!(cols[10], "service run");
    let control = msi_table(&msi, "ServiceControl");
    assert!(
        control
            .lines()
            .any(|l| l.starts_with("CarryoverServiceControl\tcarryover\t162\t")),
        "stopped on install and uninstall, removed on uninstall: {control}"
    );
    let files = msi_table(&msi, "File");
    for f in ["carryover.exe", "config.toml", "README.md"] {
        assert!(files.contains(&format!("\t{f}\t")), "{f}: {files}");
    }
    let dirs = msi_table(&msi, "Directory");
    assert!(
        dirs.contains("INSTALLDIR\tProgramFiles64Folder\tcarryover"),
        "{dirs}"
    );
    assert!(
        dirs.contains("DATADIR\tCommonAppDataFolder\tcarryover"),
        "{dirs}"
    );
    let listing = run(Command::new("python3")
        .args(["-m", "zipfile", "-l"])
        .arg(&zip));
    for f in [
        "carryover/carryover.exe",
        "carryover/config.toml",
        "carryover/README.md",
    ] {
        assert!(listing.contains(f), "{f}: {listing}");
    }
    // the default config is a valid Windows config
    let cfg = std::fs::read_to_string(top().join("packaging/windows/config.toml")).unwrap();
    let c = carryover::config::Config::from_str(&cfg, Path::new("config.toml")).unwrap();
    assert_eq!(c.store.url.as_deref(), Some(r"D:\carryover"));
}
