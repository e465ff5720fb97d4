#!/usr/bin/env python3
"""The end-to-end Change-OS test on real VMs (qemu, TCG), one scenario per old OS.

An old OS (Debian, carryover installed from the .deb) with an LVM+ext4 data disk (the
store and data) and an NTFS data disk sets up a server, runs `check` and `capture`, and
powers off. Its system disk is then swapped for a fresh Debian trixie image without
carryover; the data disks stay. The user-data `carryover userdata` printed is what
brings carryover onto the new OS (cloud-init's runcmd is emulated: the guest script runs
the same commands from a first-boot unit). The restore runs by itself and reports to an
orchestrator on the host, reached through qemu's user networking; the guest then writes
what it sees to a 9p share and the host compares it with the old OS.

Scenarios (see OLD): bookworm → trixie, the full one with the cargo-built agent: the
old OS also reboots after its capture (nothing may change), a second new-OS boot is
killed in the middle of the restore and the next resumes to `ready`, and a third has a
blank disk where the store's was. bullseye (glibc 2.31) → trixie, lean: the cycle
only, with the glibc 2.17 agent of packaging/build-linux (the cargo-built one needs
glibc 2.34). Both reuse the one cached trixie image.

    tests/vm/run.py [--old bookworm|bullseye]... [--binary PATH] [--binary-glibc217 PATH]
                    [--cache DIR] [--keep]
"""


import argparse
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
UUID = "6c1b7a8e-2f4d-4b7a-9e31-00000000c0de"
TOKEN = "vm-test-token"
BOOT_TIMEOUT = 600


def log(msg):
    print(f"[vm {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


class Orchestrator:
    """Records every event POSTed to /v1/instances/{id}/events, with its token."""

    def __init__(self):
        self.events = []
        self.lock = threading.Lock()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    ev = json.loads(body)
                except ValueError:
                    ev = {}
                m = re.match(r"^/v1/instances/([^/]+)/events$", self.path)
                with outer.lock:
                    outer.events.append({
                        "instance": m and m.group(1),
                        "auth": self.headers.get("Authorization"),
                        "phase": ev.get("phase"),
                        "state": ev.get("state"),
                        "message": ev.get("message") or "",
                        "event_id": ev.get("event_id"),
                        "at": time.monotonic(),
                    })
                self.send_response(201 if m else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, phase, states, since, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                for e in self.events:
                    if e["at"] >= since and e["phase"] == phase and e["state"] in states:
                        return e
            time.sleep(0.5)
        return None


class VM:
    def __init__(self, work, name, image, disks, share, port, http_port=None):
        """IMAGE: a cached image's directory (its vmlinuz and initrd.img boot the VM).
        HTTP_PORT: a loopback port of the host forwarded to the guest's port 80."""
        fwd = f",hostfwd=tcp:127.0.0.1:{http_port}-:80" if http_port else ""
        kernel, initrd = os.path.join(image, "vmlinuz"), os.path.join(image, "initrd.img")
        self.console = os.path.join(work, f"{name}-console.log")
        self.cmd = [
            "qemu-system-x86_64", "-accel", "tcg,thread=multi", "-cpu", "max",
            "-smp", "2", "-m", "2048", "-display", "none", "-no-reboot",
            "-kernel", kernel, "-initrd", initrd,
            "-append", "root=/dev/vda rw console=ttyS0 net.ifnames=0 systemd.show_status=0",
            "-uuid", UUID,
            # cmd: spawns the relay for each connection the guest opens
            "-netdev", f"user,id=n0,guestfwd=tcp:10.0.2.100:8080-cmd:python3 {os.path.join(HERE, 'relay.py')} {port}{fwd}",
            "-device", "virtio-net-pci,netdev=n0",
            "-virtfs", f"local,path={share},mount_tag=hostshare,security_model=none,id=hs",
            "-serial", f"file:{self.console}", "-monitor", "none",
        ]
        for d in disks:
            self.cmd += ["-drive", f"file={d},if=virtio,format=raw,cache=writeback"]
        self.proc = None

    def start(self):
        open(self.console, "w").close()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL)

    def console_text(self):
        with open(self.console, errors="replace") as f:
            return f.read()

    def wait_line(self, pattern, timeout):
        end = time.monotonic() + timeout
        rx = re.compile(pattern)
        while time.monotonic() < end:
            if rx.search(self.console_text()):
                return time.monotonic()
            if self.proc.poll() is not None:
                return None
            time.sleep(0.2)
        return None

    def wait_exit(self, timeout=BOOT_TIMEOUT):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            tail = self.console_text()[-4000:]
            raise SystemExit(f"VM did not power off within {timeout} s; console tail:\n{tail}")
        return time.monotonic() - self.started

    def kill(self):
        self.proc.kill()  # power cut: no shutdown, no sync
        self.proc.wait()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def set_phase(share, phase):
    """What guest.sh does on the next boot from SHARE: old, oldreboot, new, broken."""
    with open(os.path.join(share, "phase"), "w") as f:
        f.write(phase + "\n")


def system_disk(tree, img, size="3G"):
    if os.path.exists(img):
        os.unlink(img)
    sh("truncate", "-s", size, img)
    sh("mkfs.ext4", "-q", "-F", "-L", "rootfs", "-d", tree, img)


def extract_runcmd(user_data):
    """The shell script of the `runcmd: - [sh, -c, |…]` entry carryover prints."""
    lines = user_data.splitlines()
    start = lines.index("    - |") + 1
    body = []
    for l in lines[start:]:
        if l.startswith("      ") or l.strip() == "":
            body.append(l[6:])
        else:
            break
    return "\n".join(body) + "\n"


def facts(out, name="new.facts"):
    d = {}
    with open(os.path.join(out, name)) as f:
        for l in f:
            k, _, v = l.rstrip("\n").partition("=")
            d[k] = v.strip()
    return d


def read(path):
    with open(path) as f:
        return f.read()


CHECKED = [0]


def check(cond, what, failures):
    print(f"    {'ok  ' if cond else 'FAIL'} {what}", flush=True)
    CHECKED[0] += 1
    if not cond:
        failures.append(what)


def ids(text):
    return re.findall(r"(uid=\d+\(\w+\) gid=\d+\(\w+\))", text)


def verify_new(out, failures, scenario):
    f = facts(out)
    print(f"  checks ({scenario}):")
    check(f.get("restore_unit") == "active", f"restore unit active ({f.get('restore_unit')})", failures)
    check(f.get("hostname") == "web01" and f.get("etc_hostname") == "web01", f"hostname web01 ({f.get('hostname')})", failures)
    check(f.get("nameservers", "").split() == ["10.0.2.3", "192.0.2.53"], f"DNS servers ({f.get('nameservers')})", failures)
    check(f.get("search") == "corp.example", f"search domain ({f.get('search')})", failures)
    check(f.get("hosts_db01") == "1", "/etc/hosts entry db01", failures)
    check(f.get("hello") == "active", f"custom service active ({f.get('hello')})", failures)
    check(f.get("cron") == "17 3 * * * alice /bin/true", "cron job", failures)
    check(f.get("data_source") == "/dev/mapper/datavg-lvdata", f"LVM volume mounted at /data ({f.get('data_source')})", failures)
    check("/dev/mapper/datavg-lvdata" in f.get("fstab_data", "") and "nofail" in f.get("fstab_data", ""), f"fstab /data nofail ({f.get('fstab_data')})", failures)
    check(f.get("fstab_win", "").startswith("UUID=") and "nofail" in f.get("fstab_win", ""), f"NTFS disk in fstab by UUID ({f.get('fstab_win')})", failures)
    check(f.get("win_fstype") == "fuseblk", f"NTFS disk mounted through ntfs-3g ({f.get('win_fstype')})", failures)
    check(f.get("win_readme") == "on the NTFS disk", "NTFS content readable", failures)
    check(ids(read(os.path.join(out, "new-id"))) == ids(read(os.path.join(out, "old-id"))), "user alice with the same uid/gid", failures)
    check(read(os.path.join(out, "new-ssh.fp")) == read(os.path.join(out, "old-ssh.fp")), "SSH host key fingerprints unchanged", failures)
    check(read(os.path.join(out, "new-data.sums")) == read(os.path.join(out, "old-data.sums")), "data on the LVM disk identical (sha256)", failures)
    check(read(os.path.join(out, "new-www.sums")) == read(os.path.join(out, "old-www.sums")), "data from the system disk restored identical (sha256)", failures)
    check(read(os.path.join(out, "new-owners")).split() == ["alice:alice", "alice:alice"], "owners by name", failures)
    check("uid=1500(alice)" in read(os.path.join(out, "new-su-id")), f"su - alice -c id ({read(os.path.join(out, 'new-su-id')).strip()})", failures)
    check(read(os.path.join(out, "new-alice-keys.fp")) == read(os.path.join(out, "old-alice-keys.fp")), "alice's authorized_keys back (ssh-keygen -lf)", failures)
    check(read(os.path.join(out, "new-alice-ssh-modes")).split("\n")[:2] == ["alice:alice 700", "alice:alice 600"], f"~alice/.ssh 0700, authorized_keys 0600 ({read(os.path.join(out, 'new-alice-ssh-modes')).strip()})", failures)
    check(read(os.path.join(out, "new-other-owner")).strip() == "alice:alice", "a file on the LVM data disk keeps its owner by name", failures)
    sshd = read(os.path.join(out, "new-sshd")).split("\n")
    check("passwordauthentication no" in sshd and "maxauthtries 3" in sshd, f"sshd settings in effect (sshd -T: {' / '.join(sshd).strip()})", failures)
    check("trixie" in read(os.path.join(out, "new-os-release")), "the new OS is trixie", failures)


def step_secs(journal, name):
    """The seconds a restore step took, from its `done` line in the journal."""
    m = re.search(r'step="?' + re.escape(name) + r'"?\s.*?secs="?([0-9.]+)', journal)
    return float(m.group(1)) if m else None


def verify_service(out, journal, failures):
    """The service came back: nginx serves the page, PostgreSQL holds the row, the
    readiness step names each service and port. Returns the redeploy's timings."""
    f = facts(out)
    print("  the service (nginx, PostgreSQL):")
    page = read(os.path.join(out, "new-page.html")) if os.path.exists(os.path.join(out, "new-page.html")) else ""
    check("carryover-vm-marker-5f1c" in page, f"the host fetched the custom site over port 80 ({page.strip()[:80]!r})", failures)
    check(f.get("nginx") == "active", f"nginx active ({f.get('nginx')})", failures)
    check(f.get("sites_enabled", "").split() == ["web01"], f"sites-enabled as the operator left it ({f.get('sites_enabled')})", failures)
    check(f.get("pg_row") == "a row from bookworm", f"the row read back ({f.get('pg_row')})", failures)
    check(f.get("pg_version", "").startswith("17"), f"PostgreSQL of trixie ({f.get('pg_version')})", failures)
    check(f.get("hooks", "").split() == ["/etc/carryover/hooks/post-restore.d/90-postgresql-load", "root:root", "755"],
          f"the post-restore hook carried, root's, 0755 ({f.get('hooks')})", failures)
    for want in ("nginx.service: ready (active)", "tcp/80 (nginx): ready", "tcp/5432 (postgres): ready", "hello.service: ready (active)"):
        check(want in journal, f"readiness: {want}", failures)
    check(re.search(r"postgresql@15-main.service: ready \(active as postgresql@17-main.service\)", journal) is not None,
          "readiness: postgresql@15-main is postgresql@17-main now", failures)
    unix = read(os.path.join(out, "restore-journal-unix.log"))
    steps = {s: step_secs(unix, s) for s in ("repositories", "packages", "config-files")}
    print(f"    redeploy steps: {steps}")
    t = {f"{s} step": v for s, v in steps.items()}
    t["redeploy (repositories+packages+config-files)"] = sum(v for v in steps.values() if v is not None) if all(v is not None for v in steps.values()) else None
    return t


# The old OSes a scenario can start from. `full`: every boot (the old OS rebooted after a
# capture, a power cut in the middle of the restore, a broken store disk); otherwise only
# the cycle itself (capture on the old OS, restore on trixie). `agent`: which build of
# carryover the old OS runs — the one cargo built here (glibc 2.36) or the glibc 2.17
# baseline from packaging/build-linux, the only one a glibc older than 2.34 can run.
OLD = {
    "bookworm": {"glibc": "2.36", "agent": "binary", "full": True, "service": True},
    "bullseye": {"glibc": "2.31", "agent": "binary_glibc217", "full": False, "service": False},
}
NEW = "trixie"


def build_glibc217():
    """The x86_64 agent on a glibc 2.17 baseline, built by packaging/build-linux."""
    log("building the glibc 2.17 agent (packaging/build-linux --debug x86_64)")
    out = subprocess.run([os.path.join(TOP, "packaging/build-linux"), "--debug", "x86_64"],
                         check=True, stdout=subprocess.PIPE, text=True).stdout
    return out.split()[-1]


def scenario(old, binary, a, work, failures):
    """Capture on OLD (carryover from BINARY's .deb) → Change OS → restore on trixie.
    Returns the phase timings."""
    spec = OLD[old]
    pkg = os.path.join(work, "pkg")
    sh(os.path.join(TOP, "packaging/build"), binary, pkg, stdout=subprocess.DEVNULL)
    deb = [os.path.join(pkg, p) for p in os.listdir(pkg) if p.endswith(".deb")][0]

    # the old OS: a copy of its tree with the .deb installed by dpkg
    old_root = os.path.join(work, "old-root")
    sh("cp", "-a", os.path.join(a.cache, old, "root"), old_root)
    # dpkg inside the tree (dpkg --root would resolve the tree's groups on the host)
    shutil.copy(deb, os.path.join(old_root, "tmp/carryover.deb"))
    sh("chroot", old_root, "dpkg", "-i", "/tmp/carryover.deb", stdout=subprocess.DEVNULL)
    os.unlink(os.path.join(old_root, "tmp/carryover.deb"))
    print(f"  package installed into the {old} tree:")
    st = os.stat(os.path.join(old_root, "usr/bin/carryover"))
    check(st.st_mode & 0o777 == 0o755 and st.st_uid == 0, "/usr/bin/carryover 0755 root", failures)
    st = os.stat(os.path.join(old_root, "etc/carryover/config.toml"))
    check(st.st_mode & 0o777 == 0o600, "/etc/carryover/config.toml 0600", failures)
    check(os.stat(os.path.join(old_root, "var/lib/carryover")).st_mode & 0o777 == 0o700, "/var/lib/carryover 0700", failures)
    check(os.path.islink(os.path.join(old_root, "etc/systemd/system/multi-user.target.wants/carryover-restore.service")), "carryover-restore.service enabled", failures)
    check(os.path.islink(os.path.join(old_root, "etc/systemd/system/timers.target.wants/carryover-report.timer")), "carryover-report.timer enabled", failures)
    status = subprocess.run(["chroot", old_root, "dpkg", "-s", "carryover"], capture_output=True, text=True).stdout
    check("Status: install ok installed" in status, "dpkg says installed", failures)
    if spec["agent"] != "binary" and os.path.exists(a.binary):
        # what the glibc 2.17 build is for: the build of this machine does not start here
        shutil.copy(a.binary, os.path.join(old_root, "tmp/carryover-host"))
        r = subprocess.run(["chroot", old_root, "/tmp/carryover-host", "--version"], capture_output=True, text=True)
        os.unlink(os.path.join(old_root, "tmp/carryover-host"))
        check(r.returncode != 0 and "GLIBC_2.3" in r.stderr and "not found" in r.stderr,
              f"this machine's own build does not start on {old} ({r.stderr.strip().splitlines()[-1:]})", failures)

    old_img = os.path.join(work, "old-system.img")
    system_disk(old_root, old_img)
    shutil.rmtree(old_root)
    vdb, vdc = os.path.join(work, "data-lvm.img"), os.path.join(work, "data-ntfs.img")
    sh("truncate", "-s", "1G", vdb)
    sh("truncate", "-s", "256M", vdc)

    orch = Orchestrator()
    share = os.path.join(work, "share-old")
    os.makedirs(share)
    shutil.copy(os.path.join(HERE, "guest.sh"), share)
    if spec["service"]:
        open(os.path.join(share, "service"), "w").close()
    set_phase(share, "old")
    od = os.path.join(a.cache, old)
    vm = VM(work, "old", od, [old_img, vdb, vdc], share, orch.port)
    log(f"boot 1: the old OS ({old}): set up, check, capture")
    vm.start()
    booted = vm.wait_line(r"VMTEST guest-start old", BOOT_TIMEOUT)
    took = vm.wait_exit()
    out = os.path.join(share, "out")
    if not os.path.exists(os.path.join(out, "capture.rc")):
        print(read(os.path.join(out, "old-guest.log"))[-5000:])
        raise SystemExit("the old OS did not get to the capture")
    t0, t1 = map(float, read(os.path.join(out, "capture.time")).split())
    timings = {"old OS boot": booted - vm.started if booted else None, "capture": t1 - t0, "old OS total": took}
    print("  old OS:")
    glibc = read(os.path.join(out, "old-glibc")).strip()
    check(old in read(os.path.join(out, "old-os-release")) and glibc.endswith(" " + spec["glibc"]), f"the old OS is {old} ({glibc})", failures)
    check(read(os.path.join(out, "capture.rc")).strip() == "0", "capture exit 0", failures)
    cap = json.loads(read(os.path.join(out, "capture.json")))
    log(f"snapshot {cap['snapshot_id']}: {cap['files']} files, {cap['bytes']} bytes")
    check(cap["instance_id"] == UUID, f"instance id from DMI ({cap['instance_id']})", failures)
    keys = [f["key"] for f in json.loads(read(os.path.join(out, "check.json")))["findings"]]
    check("fstab-device-name-unstable" in keys and "ntfs-needs-ntfs3g" in keys, f"check findings {keys}", failures)
    check("data-path-on-system-disk" in keys, "data-path-on-system-disk for /srv/www", failures)
    check(orch.wait_for("capture", ("succeeded",), 0, 5) is not None, "orchestrator got capture/succeeded", failures)
    if spec["service"]:
        check("carryover-vm-marker-5f1c" in read(os.path.join(out, "old-page.html")), "the old OS serves the custom site", failures)
        check(read(os.path.join(out, "old-pg-row")).strip() == "a row from bookworm", f"PostgreSQL {read(os.path.join(out, 'old-pg-version')).strip()} holds the row", failures)
        check(any(f["key"] == "database-on-system-disk" and f["severity"] == "info" for f in json.loads(read(os.path.join(out, "check.json")))["findings"]),
              "database-on-system-disk is info with the dump hook", failures)
    user_data = read(os.path.join(out, "user-data"))
    check(user_data.startswith("#cloud-config") and len(user_data) < 32 * 1024 and TOKEN not in user_data, "user-data: cloud-config, < 32 KB, no token", failures)
    script = extract_runcmd(user_data)
    check(read(os.path.join(out, "capture-killed.rc")).strip() == "137", "a last capture killed after sealing (kill -9 from its post-capture hook)", failures)

    if spec["full"]:
        # the old OS reboots: its restore unit runs and must change nothing
        log("boot 1b: the old OS again (after a capture killed after sealing, newer data, a new hostname)")
        set_phase(share, "oldreboot")
        since_old = time.monotonic()
        vm = VM(work, "oldreboot", od, [old_img, vdb, vdc], share, orch.port)
        vm.start()
        vm.wait_exit()
        f = facts(out, "oldreboot.facts")
        print("  old OS rebooted:")
        check(f.get("restore_unit") == "active", f"restore unit ran ({f.get('restore_unit')})", failures)
        check("no restore due" in read(os.path.join(out, "oldreboot-journal.log")), "restore --if-due: no restore due", failures)
        check(f.get("etc_hostname") == "web01-after", f"hostname kept ({f.get('etc_hostname')})", failures)
        check(f.get("f0") == "newer than any snapshot", f"newer data kept ({f.get('f0')})", failures)
        check(orch.wait_for("restore", ("started", "succeeded", "degraded", "failed"), since_old, 1) is None, "no restore event from the old OS", failures)

    # the new OS: the trixie tree as it comes, carryover nowhere on it
    tx = os.path.join(a.cache, NEW)
    new_tree = os.path.join(tx, "root")
    check(not os.path.exists(os.path.join(new_tree, "usr/bin/carryover")), "the new image has no carryover", failures)
    if spec["full"]:
        # keep the data disks as the old OS left them, for the power-cut boot
        vdb2, vdc2 = vdb + ".2", vdc + ".2"
        sh("cp", "--sparse=always", vdb, vdb2)
        sh("cp", "--sparse=always", vdc, vdc2)

    def boot_new(tag, disks, kill_at=None):
        share = os.path.join(work, f"share-{tag}")
        os.makedirs(os.path.join(share, "out"), exist_ok=True)
        shutil.copy(os.path.join(HERE, "guest.sh"), share)
        if spec["service"]:
            open(os.path.join(share, "service"), "w").close()
            if not kill_at:
                open(os.path.join(share, "fetch"), "w").close()
        for name in ("old-data.sums", "old-www.sums", "old-ssh.fp", "old-id", "old-alice-keys.fp"):
            shutil.copy(os.path.join(out, name), os.path.join(share, "out", name))
        with open(os.path.join(share, "userdata.sh"), "w") as f:
            f.write(script)
        set_phase(share, "new")
        http_port = free_port() if spec["service"] and not kill_at else None
        vm = VM(work, tag, tx, disks, share, orch.port, http_port)
        since = time.monotonic()
        vm.start()
        booted = vm.wait_line(r"VMTEST guest-start new", BOOT_TIMEOUT)
        if http_port:
            # the page the new OS serves, fetched by the host over the forwarded port
            if vm.wait_line(r"VMTEST serving", 1800):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/", timeout=30) as r:
                        page = r.read().decode(errors="replace")
                except OSError as e:
                    page = f"fetch failed: {e}"
                with open(os.path.join(share, "out", "new-page.html"), "w") as f:
                    f.write(page)
            open(os.path.join(share, "fetched"), "w").close()
        if kill_at:
            at = vm.wait_line(kill_at, BOOT_TIMEOUT)
            if at is None:
                vm.wait_exit(5)
                raise SystemExit(f"never saw {kill_at!r} on the console")
            vm.kill()
            log(f"{tag}: VM killed {at - vm.started:.0f} s after start, in the middle of the restore")
            return share, since, booted - vm.started if booted else None, vm
        vm.wait_exit()
        return share, since, booted - vm.started if booted else None, vm

    new_img = os.path.join(work, "new-system.img")
    system_disk(new_tree, new_img)
    log(f"boot 2: the new OS ({NEW}) with the old data disks: user-data → restore → report")
    share1, since, booted, vm = boot_new("new", [new_img, vdb, vdc])
    ready = orch.wait_for("restore", ("succeeded", "degraded", "failed"), since, 5)
    timings["new OS boot"] = booted
    timings["time to ready (from power-on)"] = ready["at"] - vm.started if ready else None
    journal = read(os.path.join(share1, "out", "restore-journal.log"))
    print("  new OS:")
    check(ready is not None and ready["state"] == "succeeded", f"orchestrator got restore/{ready and ready['state']}", failures)
    check(ready is not None and ready["auth"] == f"Bearer {TOKEN}" and ready["instance"] == UUID, "event with the old OS's token, for this instance", failures)
    verify_new(os.path.join(share1, "out"), failures, "first boot")
    if spec["service"]:
        timings.update(verify_service(os.path.join(share1, "out"), journal, failures))
    log(f"restore journal: {len(journal.splitlines())} lines")
    if not spec["full"]:
        return timings

    # power cut in the middle of the restore, then the next boot resumes
    new_img2 = os.path.join(work, "new-system-2.img")
    system_disk(new_tree, new_img2)
    log("boot 3: the new OS again, killed in the middle of the restore")
    # killed as soon as the first steps are journaled, before the fstab step mounts the
    # NTFS disk: a power cut while ntfs-3g has it mounted can leave it unmountable on the
    # next boot (seen once; a separate problem from resuming)
    share2, since2, _, _ = boot_new("reset", [new_img2, vdb2, vdc2], kill_at=r'step="?report-token')
    log("boot 4: the same disks: the restore resumes")
    vm = VM(work, "resume", tx, [new_img2, vdb2, vdc2], share2, orch.port)
    since3 = time.monotonic()
    vm.start()
    vm.wait_exit()
    ready2 = orch.wait_for("restore", ("succeeded", "degraded", "failed"), since3, 5)
    print("  after the power cut:")
    check(ready2 is not None and ready2["state"] == "succeeded", f"orchestrator got restore/{ready2 and ready2['state']} after the resume", failures)
    journal2 = read(os.path.join(share2, "out", "restore-journal.log"))
    check("resumed" in journal2, "the restore said it resumed an interrupted one", failures)
    verify_new(os.path.join(share2, "out"), failures, "after the resume")
    timings["resumed restore (power-on to ready)"] = ready2["at"] - vm.started if ready2 else None

    # the store's disk is broken on the new OS: the user-data itself reports
    vdb3 = vdb + ".broken"
    sh("truncate", "-s", "1G", vdb3)
    new_img3 = os.path.join(work, "new-system-3.img")
    system_disk(new_tree, new_img3)
    log("boot 5: the new OS with a blank disk where the store's was: the orchestrator hears of it")
    share3 = os.path.join(work, "share-broken")
    os.makedirs(os.path.join(share3, "out"))
    shutil.copy(os.path.join(HERE, "guest.sh"), share3)
    with open(os.path.join(share3, "userdata.sh"), "w") as f:
        f.write(script)
    set_phase(share3, "broken")
    since5 = time.monotonic()
    vm = VM(work, "broken", tx, [new_img3, vdb3, vdc], share3, orch.port)
    vm.start()
    vm.wait_exit()
    failed = orch.wait_for("restore", ("failed",), since5, 5)
    print("  a broken store disk on the new OS:")
    check(read(os.path.join(share3, "out", "userdata-run.rc")).strip() != "0", "the user-data's runcmd failed", failures)
    check(failed is not None and "mounting the store disk" in failed["message"], f"orchestrator got restore/failed naming the step ({failed and failed['message']})", failures)
    check(failed is not None and failed["instance"] == UUID, "for this instance", failures)
    return timings


def main():
    ap = argparse.ArgumentParser(
        description="The Change-OS cycle on real VMs: one scenario per old OS, each to trixie.",
        epilog="Examples: `tests/vm/run.py` runs both scenarios; `tests/vm/run.py --old bookworm` "
        "only the full one; `tests/vm/run.py --old bullseye --binary-glibc217 "
        "$(packaging/build-linux --debug x86_64)` only the bullseye one.")
    ap.add_argument("--old", action="append", choices=sorted(OLD),
                    help="the old OS of a scenario to run; repeat for several (default: all: "
                    "bookworm, the full scenario with every boot; bullseye, the capture → restore cycle only)")
    ap.add_argument("--binary", default=os.path.join(TOP, "target/debug/carryover"),
                    help="the agent the bookworm scenario installs (default: target/debug/carryover)")
    ap.add_argument("--binary-glibc217",
                    help="the x86_64 agent on the glibc 2.17 baseline, for the bullseye scenario "
                    "(glibc 2.31); default: built by packaging/build-linux --debug x86_64")
    ap.add_argument("--cache", default=os.environ.get("CARRYOVER_VM_CACHE", "/var/tmp/carryover-vm"),
                    help="where the guest images are kept between runs (default: $CARRYOVER_VM_CACHE "
                    "or /var/tmp/carryover-vm)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    olds = [o for o in OLD if o in (a.old or OLD)]
    t_all = time.monotonic()
    work = tempfile.mkdtemp(prefix="carryover-vm-", dir="/var/tmp")
    log(f"work dir {work}")

    t = time.monotonic()
    sh(os.path.join(HERE, "images.sh"), a.cache, *olds, NEW)
    log(f"images ready in {time.monotonic() - t:.0f} s")
    if any(OLD[o]["agent"] == "binary_glibc217" for o in olds) and not a.binary_glibc217:
        a.binary_glibc217 = build_glibc217()

    results = []
    for old in olds:
        log(f"== scenario: {old} → {NEW}")
        t = time.monotonic()
        failures = []
        before = CHECKED[0]
        sub = os.path.join(work, old)
        os.makedirs(sub)
        timings = scenario(old, getattr(a, OLD[old]["agent"]), a, sub, failures)
        timings["whole scenario"] = time.monotonic() - t
        print(f"\nphase timings ({old} → {NEW}):")
        for k, v in timings.items():
            print(f"  {k:<38} {'-' if v is None else f'{v:.1f} s'}")
        results.append((old, CHECKED[0] - before, failures))

    print(f"\n  {'whole VM test':<38} {time.monotonic() - t_all:.1f} s")
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        log(f"kept {work}")
    failed = False
    for old, n, failures in results:
        print(f"VM test {old} → {NEW}: {n - len(failures)} passed, {len(failures)} failed")
        if failures:
            print(f"  failed: {failures}")
            failed = True
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
