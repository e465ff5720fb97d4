//! The text merges restore steps write with, as pure functions of the new OS's file and
//! the captured part: a marked carryover block for what the new file lacks (crontab,
//! chrony.conf / ntp.conf, sysctl drop-ins). The hosts and fstab merges live beside their
//! parsers; the tests here hold all of them to the same two rules over many random cases:
//! nothing of either side is lost (but the documented replacements), and merging twice
//! is merging once.

use std::collections::HashSet;

/// The line that opens carryover's block (what follows it on the line is free).
const BEGIN: &str = "# BEGIN carryover";
const BEGIN_LINE: &str = "# BEGIN carryover (restored settings; edits inside are replaced)";
const END: &str = "# END carryover";

/// The line range (BEGIN..=END) of the first complete carryover block: the first END and
/// the BEGIN nearest before it. A BEGIN or an END without its other half is an ordinary
/// line: nothing around it is taken for the block.
fn block_range(lines: &[&str]) -> Option<(usize, usize)> {
    let mut begin = None;
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with(BEGIN) {
            begin = Some(i);
        } else if l.starts_with(END)
            && let Some(b) = begin
        {
            return Some((b, i));
        }
    }
    None
}

/// The lines of `text` that are not in its carryover block: the file's own.
pub fn outside_block(text: &str) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    match block_range(&lines) {
        Some((b, e)) => lines[..b].iter().chain(&lines[e + 1..]).copied().collect(),
        None => lines,
    }
}

/// Writes the block between `# BEGIN carryover` and `# END carryover` at the end of the
/// text (the last setting of a key wins in most formats), in place of an earlier one;
/// every other line stays as it is.
pub fn set_block(text: &str, body: &str) -> String {
    let mut out = outside_block(text);
    out.push(BEGIN_LINE);
    out.extend(body.lines());
    out.push(END);
    let mut s = out.join("\n");
    s.push('\n');
    s
}

/// Writes the block at the top of the text instead, for formats where the first setting
/// wins (sshd_config); every other line stays as it is.
pub fn set_block_first(text: &str, body: &str) -> String {
    let mut out = vec![BEGIN_LINE];
    out.extend(body.lines());
    out.push(END);
    out.extend(outside_block(text));
    let mut s = out.join("\n");
    s.push('\n');
    s
}

/// Puts into the carryover block of `text` the `wanted` lines whose key no line outside
/// the block has. A wanted line without a key (a crontab's `VAR=value`) is context: it
/// goes into the block, in its place, whenever the block is written. When nothing is
/// missing the text is returned as it is.
pub fn merge_block(text: &str, wanted: &[&str], key: impl Fn(&str) -> Option<String>) -> String {
    let have: HashSet<String> = outside_block(text).into_iter().filter_map(&key).collect();
    if !wanted
        .iter()
        .any(|l| key(l).is_some_and(|k| !have.contains(&k)))
    {
        return text.to_string();
    }
    let body: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|l| key(l).is_none_or(|k| !have.contains(&k)))
        .collect();
    set_block(text, &body.join("\n"))
}

/// authorized_keys: every line of the new OS's file stays (the key pair of the Change OS
/// call among them) and the captured keys it lacks go into the block — a key by its type
/// and data, whatever its options and comment. A new file is the captured keys.
pub fn authorized_keys(current: Option<&str>, captured: &[&str]) -> String {
    match current {
        Some(c) => merge_block(c, captured, key_of),
        None => captured.iter().map(|l| format!("{l}\n")).collect(),
    }
}

/// A sudoers file the new OS has under the same name: its lines stay, the captured rules
/// it lacks go into the block at its end (sudo: the last matching rule wins). A new file is
/// the captured rules.
pub fn sudoers(current: Option<&str>, captured: &[&str]) -> String {
    match current {
        Some(c) => merge_block(c, captured, sudoers_key),
        None => captured.iter().map(|l| format!("{l}\n")).collect(),
    }
}

/// A sudoers rule, by its words; comments and blanks have no key.
fn sudoers_key(l: &str) -> Option<String> {
    (crate::state::sudoers::classify(l) != crate::state::sudoers::Line::Nothing)
        .then(|| squeezed(l))
}

/// An authorized_keys line, by its key.
fn key_of(l: &str) -> Option<String> {
    crate::state::logins::parse_key_line(l)
        .ok()
        .map(|k| k.key())
}

/// The words of a line, joined by single spaces: two lines that differ only in spacing
/// are the same setting.
fn squeezed(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A crontab job line, by its words; `VAR=value`, comments and blanks have no key.
fn cron_key(l: &str) -> Option<String> {
    let t = l.trim();
    let job = !t.is_empty() && !t.starts_with('#') && !crate::state::cron::is_assignment(t);
    job.then(|| squeezed(t))
}

/// An NTP source line, by its host.
fn ntp_key(l: &str) -> Option<String> {
    crate::state::clock::parse_ntp_lines(l)
        .into_iter()
        .next()
        .map(|s| s.host)
}

/// A sysctl setting, without its spacing (`a = 1` is `a=1`).
fn sysctl_key(l: &str) -> Option<String> {
    let t = l.trim();
    let setting = !t.is_empty() && !t.starts_with('#') && !t.starts_with(';');
    setting.then(|| t.chars().filter(|c| !c.is_whitespace()).collect())
}

/// /etc/crontab: the captured jobs the new file lacks go into the block, after the
/// captured `VAR=value` lines so that they run with the environment they had.
pub fn crontab(current: Option<&str>, captured: &str) -> String {
    let Some(current) = current else {
        return captured.to_string();
    };
    let wanted: Vec<&str> = captured
        .lines()
        .map(str::trim_end)
        .filter(|l| {
            let t = l.trim_start();
            !t.is_empty() && !t.starts_with('#')
        })
        .collect();
    // an old assignment (`MAILTO=ops@…`) the new file lacks is carried even when every
    // job is there already: the block is written with the captured environment
    let present: HashSet<String> = current.lines().map(squeezed).collect();
    let assignment_missing = wanted
        .iter()
        .any(|l| crate::state::cron::is_assignment(l.trim()) && !present.contains(&squeezed(l)));
    let merged = merge_block(current, &wanted, cron_key);
    if merged != current || !assignment_missing {
        return merged;
    }
    let body: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|l| crate::state::cron::is_assignment(l.trim()))
        .collect();
    set_block(current, &body.join("\n"))
}

/// chrony.conf / ntp.conf: the captured sources (`server`/`pool` lines) whose host the
/// new file does not name go into the block; a host it names keeps the new file's line.
pub fn ntp_sources(current: &str, sources: &str) -> String {
    let wanted: Vec<&str> = sources.lines().collect();
    merge_block(current, &wanted, ntp_key)
}

/// A sysctl drop-in the new OS has under the same name: its lines stay, the captured
/// settings it lacks go into the block at its end (the last assignment of a key wins).
pub fn sysctl(current: Option<&str>, captured: &str) -> String {
    match current {
        None => captured.to_string(),
        Some(c) if c == captured => c.to_string(),
        Some(c) => {
            let wanted: Vec<&str> = captured
                .lines()
                .map(str::trim)
                .filter(|l| sysctl_key(l).is_some())
                .collect();
            merge_block(c, &wanted, sysctl_key)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disks::fstab as mounts;
    use crate::state::hosts::{self, HostsEntry};

    /// How many random cases each property sees.
    const CASES: usize = 3000;

    /// splitmix64 with a fixed seed: the same cases on every run, no dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[self.below(from.len())]
        }
        fn chance(&mut self, percent: u64) -> bool {
            self.next() % 100 < percent
        }
        /// 0..=max items made by `f`.
        fn some<T>(&mut self, max: usize, mut f: impl FnMut(&mut Rng) -> T) -> Vec<T> {
            let n = self.below(max + 1);
            (0..n).map(|_| f(self)).collect()
        }
    }

    fn text(lines: &[String]) -> String {
        lines.iter().map(|l| format!("{l}\n")).collect()
    }

    /// A few lines of noise every file may have: comments, blanks, a stray block marker.
    fn noise(r: &mut Rng) -> String {
        r.pick(&[
            "",
            "# a comment",
            "   ",
            "# BEGIN carryover (an unfinished block)",
        ])
        .to_string()
    }

    // ---- hosts ---------------------------------------------------------------------

    const ADDRS: &[&str] = &["127.0.0.1", "127.0.1.1", "10.0.0.5", "::1", "192.168.7.9"];
    const NAMES: &[&str] = &[
        "runsc",
        "vm",
        "db01",
        "db01.internal",
        "web01",
        "web01.example.com",
        "img",
        "img.novalocal",
        "localhost",
    ];

    fn hosts_entry(r: &mut Rng) -> HostsEntry {
        let mut names: Vec<String> = Vec::new();
        for _ in 0..1 + r.below(3) {
            let n = r.pick(NAMES).to_string();
            if !names.contains(&n) {
                names.push(n);
            }
        }
        HostsEntry {
            address: r.pick(ADDRS).into(),
            names,
        }
    }

    fn hosts_line(r: &mut Rng) -> String {
        if r.chance(20) {
            return noise(r);
        }
        let e = hosts_entry(r);
        let sep = r.pick(&["\t", " ", "   "]);
        let comment = if r.chance(10) { " # note" } else { "" };
        format!("{}{sep}{}{comment}", e.address, e.names.join(sep))
    }

    /// Every (address, name) an address line of `text` carries.
    fn pairs(text: &str) -> Vec<(String, String)> {
        hosts::parse(text)
            .into_iter()
            .flat_map(|e| {
                let a = e.address.clone();
                e.names.into_iter().map(move |n| (a.clone(), n))
            })
            .collect()
    }

    #[test]
    fn hosts_merge_loses_nothing_and_is_idempotent() {
        let mut r = Rng(1203);
        for case in 0..CASES {
            let new = text(&r.some(8, hosts_line));
            let captured = r.some(4, hosts_entry);
            let image = r.pick(&["img", "img.novalocal", "", "web01"]);
            let merged = hosts::merge(&new, &captured, image);
            let ctx = format!(
                "case {case}\n--- new\n{new}--- captured {captured:?}, image {image:?}\n--- merged\n{merged}"
            );
            let own = captured.iter().any(|e| e.address == hosts::SELF_ADDRESS);
            let short = image.split('.').next().unwrap_or("");
            // every captured entry is a line of the result
            for e in &captured {
                assert!(
                    merged.lines().any(|l| hosts::parse(l).first() == Some(e)),
                    "{e:?} missing: {ctx}"
                );
            }
            // every name of the new file stays with its address, but the image's own
            // hostname on 127.0.1.1 when a captured 127.0.1.1 line replaces it
            let have = pairs(&merged);
            for (a, n) in pairs(&new) {
                let replaced = own
                    && a == hosts::SELF_ADDRESS
                    && !short.is_empty()
                    && (n == image || n == short || n.starts_with(&format!("{short}.")));
                assert!(
                    replaced || have.contains(&(a.clone(), n.clone())),
                    "{a} {n} lost: {ctx}"
                );
            }
            // every other line stays verbatim
            for l in new.lines() {
                if hosts::parse(l)
                    .first()
                    .is_none_or(|e| e.address != hosts::SELF_ADDRESS)
                {
                    assert!(merged.lines().any(|m| m == l), "line {l:?} lost: {ctx}");
                }
            }
            assert_eq!(
                hosts::merge(&merged, &captured, image),
                merged,
                "not idempotent: {ctx}"
            );
        }
    }

    #[test]
    fn hosts_merge_keeps_both_names_of_one_address_regression_12_3() {
        let new = "127.0.0.1 localhost\n127.0.0.1 runsc\n";
        let captured = [
            HostsEntry {
                address: "127.0.0.1".into(),
                names: vec!["runsc".into()],
            },
            HostsEntry {
                address: "127.0.0.1".into(),
                names: vec!["vm".into()],
            },
        ];
        let merged = hosts::merge(new, &captured, "ubuntu");
        assert_eq!(
            merged,
            "127.0.0.1 localhost\n127.0.0.1 runsc\n# restored by carryover\n127.0.0.1\tvm\n"
        );
    }

    #[test]
    fn hosts_merge_replaces_only_the_image_name_on_127_0_1_1() {
        let new = "127.0.0.1 localhost\n127.0.1.1 img.novalocal img mirror\n::1 localhost\n";
        let captured = [HostsEntry {
            address: "127.0.1.1".into(),
            names: vec!["web01.example.com".into(), "web01".into()],
        }];
        let merged = hosts::merge(new, &captured, "img");
        assert_eq!(
            merged,
            "127.0.0.1 localhost\n127.0.1.1\tweb01.example.com web01\n127.0.1.1\tmirror\n::1 localhost\n"
        );
        // not knowing the image's name, nothing of its line is dropped
        let kept = hosts::merge(new, &captured, "");
        assert!(
            kept.contains("127.0.1.1 img.novalocal img mirror\n"),
            "{kept}"
        );
        assert!(
            kept.contains("127.0.1.1\tweb01.example.com web01\n"),
            "{kept}"
        );
    }

    // ---- fstab ---------------------------------------------------------------------

    fn fstab_line(r: &mut Rng) -> String {
        if r.chance(15) {
            return noise(r);
        }
        if r.chance(10) {
            return r
                .pick(&[
                    "UUID=root-1 / ext4 defaults 0 1",
                    "UUID=EF01 /boot/efi vfat umask=0077 0 1",
                    "tmpfs /tmp tmpfs defaults 0 0",
                ])
                .to_string();
        }
        let swap = r.chance(15);
        let spec = r.pick(&[
            "UUID=aaaa",
            "UUID=bbbb",
            "LABEL=data",
            "/dev/vdb1",
            "/srv/a",
        ]);
        let (mp, fstype) = if swap {
            ("none", "swap")
        } else {
            (
                r.pick(&["/srv", "/data", "/mnt", "/var/www", "/mnt/backup\\040disk"]),
                r.pick(&["ext4", "xfs", "btrfs", "none"]),
            )
        };
        let opts = r.pick(&[
            "defaults",
            "defaults,nofail",
            "noatime",
            "subvol=@home",
            "bind",
            "sw",
        ]);
        let tail = r.pick(&[" 0 0", " 0 2", "", " 1"]);
        format!("{spec} {mp} {fstype} {opts}{tail}")
    }

    #[test]
    fn fstab_merge_loses_nothing_and_is_idempotent() {
        let mut r = Rng(1231);
        for case in 0..CASES {
            let new_lines = r.some(7, fstab_line);
            let new = text(&new_lines);
            let captured = mounts::parse_fstab(&text(&r.some(5, fstab_line)));
            let (merged, clashes) = mounts::merge_fstab(&new, &captured);
            let ctx = format!(
                "case {case}\n--- new\n{new}--- captured\n{captured:#?}\n--- merged\n{merged}--- clashes {clashes:?}"
            );
            let out: Vec<&str> = merged.lines().collect();
            let entry = |l: &str| mounts::parse_fstab(l).into_iter().next();
            // the new file's lines keep their places; one may only be replaced by a
            // captured entry for the same device at the same place
            assert!(out.len() >= new_lines.len(), "{ctx}");
            for (i, l) in new_lines.iter().enumerate() {
                if out[i] == l {
                    continue;
                }
                let (old, now) = (entry(l).expect(&ctx), entry(out[i]).expect(&ctx));
                assert!(
                    old.spec == now.spec
                        && (old.swap && now.swap || old.mountpoint == now.mountpoint)
                        && captured.iter().any(|c| c.is_data()
                            && mounts::same_line(&entry(&mounts::render(c)).unwrap(), &now)),
                    "line {i} {l:?} lost: {ctx}"
                );
            }
            // every data entry is in, or named as a clash with the new OS's own mount
            for c in captured.iter().filter(|c| c.is_data()) {
                let want = entry(&mounts::render(c)).unwrap();
                let present = out
                    .iter()
                    .any(|l| entry(l).is_some_and(|x| mounts::same_line(&x, &want)));
                let clash = clashes
                    .iter()
                    .any(|m| m.starts_with(&format!("{} is ", c.mountpoint)));
                assert!(present || clash, "{c:?} missing: {ctx}");
            }
            // no system or pseudo entry of the old OS comes in
            for c in captured.iter().filter(|c| !c.is_data()) {
                let in_new = new_lines
                    .iter()
                    .any(|l| entry(l).is_some_and(|x| mounts::same_line(&x, c)));
                let in_out = out
                    .iter()
                    .any(|l| entry(l).is_some_and(|x| mounts::same_line(&x, c)));
                assert!(in_new || !in_out, "{c:?} carried: {ctx}");
            }
            let (again, clashes_again) = mounts::merge_fstab(&merged, &captured);
            assert_eq!(again, merged, "not idempotent: {ctx}");
            assert_eq!(clashes_again, clashes, "{ctx}");
        }
    }

    #[test]
    fn fstab_merge_keeps_two_subvolumes_of_one_device() {
        let old = mounts::parse_fstab(
            "UUID=x /home btrfs subvol=@home 0 0\nUUID=x /data btrfs subvol=@data 0 0\n",
        );
        let (once, _) = mounts::merge_fstab("UUID=root / ext4 defaults 0 1\n", &old);
        assert!(
            once.contains("/home\tbtrfs\tsubvol=@home,nofail")
                && once.contains("/data\tbtrfs\tsubvol=@data,nofail"),
            "{once}"
        );
        assert_eq!(mounts::merge_fstab(&once, &old).0, once);
    }

    // ---- the block merges ----------------------------------------------------------

    /// A new file of random `line`s (with, now and then, the block of an earlier run).
    fn new_file(r: &mut Rng, line: fn(&mut Rng) -> String) -> String {
        let mut lines = r.some(6, line);
        if r.chance(30) {
            let at = r.below(lines.len() + 1);
            let mut block = vec![BEGIN_LINE.to_string()];
            block.extend(r.some(3, line));
            block.push(END.to_string());
            lines.splice(at..at, block);
        }
        text(&lines)
    }

    /// Runs a block merge over random cases and holds it to the rules: the lines outside
    /// the block are the new file's own (but the block of an earlier run), every keyed
    /// captured line is there by its key, a second merge changes nothing. `more` checks
    /// what is particular to one format on each (case, new, captured, merged).
    fn block_merge_cases(
        seed: u64,
        line: fn(&mut Rng) -> String,
        merge: fn(&str, &str) -> String,
        key: fn(&str) -> Option<String>,
        more: impl Fn(usize, &str, &str, &str),
    ) {
        let mut r = Rng(seed);
        for case in 0..CASES {
            let new = new_file(&mut r, line);
            let captured = text(&r.some(5, line));
            let merged = merge(&new, &captured);
            let ctx =
                format!("case {case}\n--- new\n{new}--- captured\n{captured}--- merged\n{merged}");
            assert_eq!(
                outside_block(&merged),
                outside_block(&new),
                "the file's own lines: {ctx}"
            );
            let have: HashSet<String> = merged.lines().filter_map(key).collect();
            for k in captured.lines().filter_map(key) {
                assert!(have.contains(&k), "{k} missing: {ctx}");
            }
            assert_eq!(merge(&merged, &captured), merged, "not idempotent: {ctx}");
            more(case, &new, &captured, &merged);
        }
    }

    fn cron_line(r: &mut Rng) -> String {
        if r.chance(20) {
            return noise(r);
        }
        r.pick(&[
            "SHELL=/bin/sh",
            "PATH=/usr/bin:/bin",
            "MAILTO=ops@example.com",
            "17 * * * * root cd / && run-parts --report /etc/cron.hourly",
            "17 *\t* * *\troot\tcd / && run-parts --report /etc/cron.hourly",
            "30 2 * * * root /usr/local/bin/rotate-app-logs",
            "*/5 * * * * root /opt/app/poll",
            "@reboot root /opt/app/start",
        ])
        .to_string()
    }

    #[test]
    fn crontab_merge_loses_nothing_and_is_idempotent() {
        let merge = |new: &str, captured: &str| crontab(Some(new), captured);
        block_merge_cases(
            1232,
            cron_line,
            merge,
            cron_key,
            |case, new, captured, merged| {
                assert_eq!(crontab(None, captured), captured);
                if merged == new {
                    return;
                }
                // the block's jobs run with the captured environment
                let lines: Vec<&str> = merged.lines().collect();
                let (b, e) = block_range(&lines).expect("a block");
                for var in captured
                    .lines()
                    .filter(|l| crate::state::cron::is_assignment(l.trim()))
                {
                    assert!(
                        lines[b..e].contains(&var),
                        "case {case}: {var} not in the block\n{merged}"
                    );
                }
            },
        );
    }

    fn ntp_line(r: &mut Rng) -> String {
        if r.chance(25) {
            return r
                .pick(&[
                    "driftfile /var/lib/chrony/drift",
                    "makestep 1.0 3",
                    "",
                    "# pool x",
                ])
                .to_string();
        }
        let host = r.pick(&[
            "ntp.myhuaweicloud.com",
            "100.125.0.251",
            "2.rocky.pool.ntp.org",
            "time.example.com",
        ]);
        let opts = r.pick(&["", " iburst", " iburst minpoll 4"]);
        format!("{} {host}{opts}", r.pick(&["server", "pool"]))
    }

    #[test]
    fn ntp_merge_loses_nothing_and_is_idempotent() {
        block_merge_cases(1233, ntp_line, ntp_sources, ntp_key, |_, _, _, _| {});
    }

    fn sysctl_line(r: &mut Rng) -> String {
        if r.chance(20) {
            return noise(r);
        }
        let name = r.pick(&[
            "vm.swappiness",
            "net.core.somaxconn",
            "-net.ipv4.ip_forward",
        ]);
        let eq = r.pick(&["=", " = ", " ="]);
        format!("{name}{eq}{}", r.pick(&["1", "10", "4096"]))
    }

    #[test]
    fn sysctl_merge_loses_nothing_and_is_idempotent() {
        let merge = |new: &str, captured: &str| sysctl(Some(new), captured);
        block_merge_cases(
            1234,
            sysctl_line,
            merge,
            sysctl_key,
            |case, new, captured, merged| {
                assert_eq!(sysctl(None, captured), captured);
                // the captured value of a name is the one in effect (the last one), unless
                // the new file already had that very setting and changed it again below
                let last = |text: &str, name: &str| {
                    text.lines()
                        .filter_map(sysctl_key)
                        .rfind(|m| m.split_once('=').is_some_and(|(n, _)| n == name))
                };
                let own: Vec<String> = outside_block(new)
                    .into_iter()
                    .filter_map(sysctl_key)
                    .collect();
                for l in captured.lines().filter_map(sysctl_key) {
                    let (name, _) = l.split_once('=').expect("a setting");
                    let want = last(captured, name);
                    if want.as_ref().is_some_and(|w| !own.contains(w)) {
                        assert_eq!(last(merged, name), want, "case {case}\n{merged}");
                    }
                }
            },
        );
    }

    /// An ed25519 public key line, one of a few keys, with or without options.
    fn key_line(r: &mut Rng) -> String {
        use base64::Engine;
        if r.chance(15) {
            return noise(r);
        }
        let mut wire = vec![0, 0, 0, 11];
        wire.extend_from_slice(b"ssh-ed25519");
        wire.extend_from_slice(&[0, 0, 0, 32]);
        wire.extend_from_slice(&[r.below(4) as u8; 32]);
        let blob = base64::engine::general_purpose::STANDARD.encode(wire);
        let options = r.pick(&["", "restrict ", "from=\"10.0.0.0/8\",no-pty "]);
        let comment = r.pick(&["", " alice@laptop", " cloud-key"]);
        format!("{options}ssh-ed25519 {blob}{comment}")
    }

    #[test]
    fn authorized_keys_merge_loses_nothing_and_is_idempotent() {
        let merge = |new: &str, captured: &str| {
            let keys: Vec<&str> = captured.lines().filter(|l| key_of(l).is_some()).collect();
            authorized_keys(Some(new), &keys)
        };
        block_merge_cases(1235, key_line, merge, key_of, |case, new, _, merged| {
            // the new OS's keys (the Change OS key pair) stay where they were
            for l in outside_block(new)
                .into_iter()
                .filter(|l| key_of(l).is_some())
            {
                assert!(merged.lines().any(|m| m == l), "case {case}: {l} lost");
            }
        });
        assert_eq!(
            authorized_keys(None, &["ssh-ed25519 AAAA a", "ssh-rsa BBBB b"]),
            "ssh-ed25519 AAAA a\nssh-rsa BBBB b\n"
        );
    }

    fn sudoers_line(r: &mut Rng) -> String {
        if r.chance(20) {
            return noise(r);
        }
        r.pick(&[
            "ubuntu ALL=(ALL) NOPASSWD:ALL",
            "rocky ALL=(ALL) NOPASSWD:ALL",
            "rocky  ALL=(ALL)  NOPASSWD:ALL",
            "%ops ALL=(root) /usr/bin/journalctl",
            "Defaults:alice !requiretty",
        ])
        .to_string()
    }

    #[test]
    fn sudoers_merge_loses_nothing_and_is_idempotent() {
        let merge = |new: &str, captured: &str| {
            let rules: Vec<&str> = captured
                .lines()
                .filter(|l| sudoers_key(l).is_some())
                .collect();
            sudoers(Some(new), &rules)
        };
        block_merge_cases(1236, sudoers_line, merge, sudoers_key, |_, _, _, _| {});
    }

    #[test]
    fn set_block_first_puts_the_block_on_top() {
        let once = set_block_first("Port 22\n", "Include /x.conf");
        assert!(once.starts_with("# BEGIN carryover"), "{once}");
        assert!(once.ends_with("# END carryover\nPort 22\n"), "{once}");
        assert_eq!(set_block_first(&once, "Include /x.conf"), once);
    }

    #[test]
    fn block_is_replaced_not_duplicated() {
        let once = set_block("server a\n", "server b");
        assert_eq!(
            once,
            "server a\n# BEGIN carryover (restored settings; edits inside are replaced)\nserver b\n# END carryover\n"
        );
        assert_eq!(set_block(&once, "server b"), once);
        assert!(set_block(&once, "server c").contains("server c\n# END"));
        assert!(!set_block(&once, "server c").contains("server b"));
        // a BEGIN with no END keeps every line after it
        let open = "a\n# BEGIN carryover\nb\nc\n";
        assert!(
            set_block(open, "x").starts_with(open),
            "{}",
            set_block(open, "x")
        );
    }
}

#[cfg(test)]
mod review_tests {
    use super::*;

    /// Review of #12: every job of the old crontab is in the new one already, but its
    /// `MAILTO=` is not: the assignment is still carried.
    #[test]
    fn an_old_crontab_assignment_is_carried_when_every_job_is_there() {
        let new = "SHELL=/bin/sh\n17 * * * * root cd / && run-parts --report /etc/cron.hourly\n";
        let old =
            "MAILTO=ops@example.com\n17 * * * * root cd / && run-parts --report /etc/cron.hourly\n";
        let merged = crontab(Some(new), old);
        assert!(merged.contains("MAILTO=ops@example.com"), "{merged}");
        assert!(merged.starts_with(new), "{merged}");
        assert_eq!(crontab(Some(&merged), old), merged);
    }
}
