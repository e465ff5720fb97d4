#!/usr/bin/env python3
"""carryover's benchmark: carryover side by side with the tools an operator would pick
instead — `tar | zstd -3 -T0` (GNU tar incremental) and restic — on the shared bench data
set, in one run.

  python3 bench/run.py [--work DIR] [--small N] [--large-mib N] [--runs N] [--cold] [--check]
  python3 bench/run.py --s3 [--work DIR] [--small N] [--large-mib N]

Phases per tool: first capture, no-op re-capture, capture after the data set's 1 %
mutation, full restore of the latest snapshot. For each: wall time, peak RSS (of the
process tree, from wait4), and the store's size. Prints a Markdown table.

--s3: carryover and restic (its default `-o s3.connections`) against an S3 server (s3s-fs
on loopback), directly and through ../shared/bench/wanproxy.py (20 ms one-way latency,
25 MB/s per connection): first capture and full restore, wall time and peak RSS, on a set
of 5,000 small files + 300 MiB of large ones unless --small/--large-mib say otherwise.

The data set is generated once by ../shared/bench/gen_dataset.py into WORK/root/data
(carryover captures it as `--root WORK/root --path /data` and restores it under
WORK/restore-carryover/data). --cold drops the page cache before every step (root only).
--check compares each restored tree with the original (compare_trees.py).
Every restore goes to a new journaled ext4 on a loop device (as root; --same-fs: a folder
on the work filesystem instead), so no tool pays for the clean-up of the one before it.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SHARED = os.path.join(os.path.dirname(REPO), "shared", "bench")
MiB = 1 << 20


def run(cmd, env=None, cwd=None):
    """Runs a shell command; returns (wall seconds, peak RSS MiB)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, shell=True, env=env, cwd=cwd, stdout=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 4):
        sys.exit(f"failed ({code}): {cmd}")
    return wall, ru.ru_maxrss / 1024.0


def du(path):
    total = 0
    for dp, _, fns in os.walk(path):
        for f in fns:
            try:
                total += os.lstat(os.path.join(dp, f)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


class FreshFs:
    """A restore target on a new, journaled ext4 of its own (a loop device with direct I/O), as a data disk
    of a new server is: this machine's root filesystem is ext4 without a journal, where
    creating files right after many were deleted scans for recently deleted inodes
    (`recently_deleted` in the kernel), which made every tool's restore pay for the previous
    one's clean-up. Needs root; without it (or with --same-fs) the target is a plain folder."""

    def __init__(self, a, path, size_gib):
        self.on = os.geteuid() == 0 and not a.same_fs
        self.path, self.size = path, size_gib
        self.image = path.rstrip("/") + ".img"

    def __enter__(self):
        shutil.rmtree(self.path, ignore_errors=True)
        os.makedirs(self.path)
        if self.on:
            subprocess.run(["truncate", "-s", f"{self.size}G", self.image], check=True)
            # direct I/O: the loop device writes to the disk as a disk would, not into the
            # page cache of the file behind it (a flush of the new filesystem would then
            # write everything twice)
            self.loop = subprocess.check_output(["losetup", "--direct-io=on", "-f", "--show", self.image],
                                                text=True).strip()
            subprocess.run(["mkfs.ext4", "-q", "-F", self.loop], check=True)
            subprocess.run(["mount", self.loop, self.path], check=True)
        return self

    def __exit__(self, *exc):
        if self.on:
            subprocess.run(["umount", self.path], check=False)
            subprocess.run(["losetup", "-d", self.loop], check=False)
            os.remove(self.image)
        shutil.rmtree(self.path, ignore_errors=True)


def drop_caches(cold):
    if cold:
        subprocess.run("sync; echo 3 > /proc/sys/vm/drop_caches", shell=True, check=False)


class Tool:
    def __init__(self, work, name):
        self.work, self.name = work, name
        self.store = os.path.join(work, "store-" + name)
        self.restore_dir = os.path.join(work, "restore-" + name)

    def reset(self):
        for d in (self.store, self.restore_dir):
            shutil.rmtree(d, ignore_errors=True)


class Carryover(Tool):
    def __init__(self, work, binary):
        super().__init__(work, "carryover")
        self.bin = binary
        self.root = os.path.join(work, "root")

    def capture(self):
        return run(f"{self.bin} capture -q --root {self.root} --store {self.store} --path /data")

    def restore(self):
        os.makedirs(self.restore_dir, exist_ok=True)
        snaps = json.loads(subprocess.check_output(
            [self.bin, "snapshots", "list", "--store", self.store, "--format", "json"]))
        sid = snaps[-1]["id"]
        return run(f"{self.bin} restore -q --root {self.restore_dir} --store {self.store} --snapshot {sid}")

    def restored(self):
        return os.path.join(self.restore_dir, "data")


class TarZstd(Tool):
    def __init__(self, work):
        super().__init__(work, "tar-zstd")
        self.data = os.path.join(work, "root", "data")
        self.n = 0

    def capture(self):
        os.makedirs(self.store, exist_ok=True)
        out = os.path.join(self.store, f"level{self.n}.tar.zst")
        self.n += 1
        return run(f"tar --xattrs --acls -C {os.path.dirname(self.data)} --listed-incremental={self.store}/snar "
                   f"-cf - data | zstd -3 -T0 -q -o {out}")

    def restore(self):
        os.makedirs(self.restore_dir, exist_ok=True)
        parts = sorted(f for f in os.listdir(self.store) if f.endswith(".tar.zst"))
        cmd = " && ".join(
            f"zstd -dc {self.store}/{p} | tar --xattrs --acls --listed-incremental=/dev/null -xpf - -C {self.restore_dir}"
            for p in parts)
        return run(cmd)

    def restored(self):
        return os.path.join(self.restore_dir, "data")


class Restic(Tool):
    def __init__(self, work):
        super().__init__(work, "restic")
        self.data = os.path.join(work, "root", "data")
        self.env = dict(os.environ, RESTIC_PASSWORD="bench", RESTIC_REPOSITORY=self.store,
                        RESTIC_CACHE_DIR=os.path.join(work, "restic-cache"))

    def reset(self):
        super().reset()
        shutil.rmtree(self.env["RESTIC_CACHE_DIR"], ignore_errors=True)
        subprocess.run("restic init -q", shell=True, env=self.env, check=True, stdout=subprocess.DEVNULL)

    def capture(self):
        return run(f"restic backup -q {self.data}", env=self.env)

    def restore(self):
        return run(f"restic restore -q latest --target {self.restore_dir}", env=self.env)

    def restored(self):
        return os.path.join(self.restore_dir, self.data.lstrip("/"))


S3_KEY, S3_SECRET = "bench-key", "bench-secret-0123456789"


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port):
    import socket
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


def s3_bench(a, work, data):
    """Capture and restore through S3, on loopback and through the WAN relay."""
    s3fs = shutil.which("s3s-fs") or os.path.expanduser("~/.cargo/bin/s3s-fs")
    if not os.path.exists(s3fs):
        sys.exit("s3s-fs is missing: cargo install s3s-fs@0.14.1 --features binary")
    s3dir = os.path.join(work, "s3")
    shutil.rmtree(s3dir, ignore_errors=True)
    os.makedirs(os.path.join(s3dir, "bench"))
    port, relay = free_port(), free_port()
    procs = [subprocess.Popen([s3fs, "--host", "127.0.0.1", "--port", str(port), "--access-key", S3_KEY,
                               "--secret-key", S3_SECRET, s3dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
             subprocess.Popen([sys.executable, os.path.join(SHARED, "wanproxy.py"), str(relay), str(port), "20", "25"])]
    env = dict(os.environ, AWS_ACCESS_KEY_ID=S3_KEY, AWS_SECRET_ACCESS_KEY=S3_SECRET, AWS_REGION="us-east-1",
               RESTIC_PASSWORD="bench")
    rows = {}
    try:
        wait_port(port)
        wait_port(relay)
        for link, p in (("loopback", port), ("20 ms one-way, 25 MB/s per connection", relay)):
            endpoint = f"http://127.0.0.1:{p}"
            row = rows[link] = {}
            for tool in a.tools.split(","):
                if tool not in ("carryover", "restic"):
                    continue
                prefix = f"{tool}-{p}"
                shutil.rmtree(os.path.join(s3dir, "bench", prefix), ignore_errors=True)
                target = os.path.join(work, "restore-s3-" + tool)
                if tool == "carryover":
                    e = dict(env, AWS_ENDPOINT_URL=endpoint)
                    url = f"s3://bench/{prefix}"
                    shutil.rmtree(os.path.join(work, "root", "var"), ignore_errors=True)
                    row["capture carryover"] = run(f"{a.binary} capture -q --root {work}/root --store {url} --path /data", env=e)
                    snaps = json.loads(subprocess.check_output(
                        [a.binary, "snapshots", "list", "--store", url, "--format", "json"], env=e))
                    with FreshFs(a, target, 4):
                        row["restore carryover"] = run(f"{a.binary} restore -q --root {target} --store {url} "
                                                       f"--snapshot {snaps[-1]['id']}", env=e)
                else:
                    e = dict(env, RESTIC_REPOSITORY=f"s3:{endpoint}/bench/{prefix}",
                             RESTIC_CACHE_DIR=os.path.join(work, f"restic-cache-{p}"))
                    shutil.rmtree(e["RESTIC_CACHE_DIR"], ignore_errors=True)
                    subprocess.run("restic init -q", shell=True, env=e, check=True, stdout=subprocess.DEVNULL)
                    row["capture restic"] = run(f"restic backup -q {data}", env=e)
                    with FreshFs(a, target, 4):
                        row["restore restic"] = run(f"restic restore -q latest --target {target}", env=e)
                print(link, tool, {k: v for k, v in row.items() if tool in k}, file=sys.stderr)
    finally:
        for pr in procs:
            pr.kill()
            pr.wait()
    print(f"\n{a.small} small files + {a.large_mib} MiB large, S3 (s3s-fs), one run; seconds (peak RSS MiB)\n")
    cols = ["capture carryover", "capture restic", "restore carryover", "restore restic"]
    print("| link | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for link, row in rows.items():
        cells = [f"{row[c][0]:.1f} ({row[c][1]:.0f})" if c in row else "–" for c in cols]
        print(f"| {link} | " + " | ".join(cells) + " |")
    with open(os.path.join(work, "results-s3.json"), "w") as f:
        json.dump(rows, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/var/tmp/carryover-bench")
    ap.add_argument("--small", type=int, default=None)
    ap.add_argument("--large-mib", type=int, default=None)
    ap.add_argument("--s3", action="store_true")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--cold", action="store_true")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--same-fs", action="store_true",
                    help="restore into folders on the work filesystem, not a new ext4 each time")
    ap.add_argument("--tools", default="carryover,tar-zstd,restic")
    ap.add_argument("--binary", default=os.path.join(REPO, "target", "release", "carryover"))
    a = ap.parse_args()
    if a.s3 and a.work == ap.get_default("work"):
        a.work += "-s3"
    if a.small is None:
        a.small = 5000 if a.s3 else 100000
    if a.large_mib is None:
        a.large_mib = 300 if a.s3 else 2048

    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO, check=True)
    for tool in ("zstd", "tar", "restic"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install -y zstd tar restic")
    work = a.work
    data = os.path.join(work, "root", "data")
    gen = os.path.join(SHARED, "gen_dataset.py")
    stamp = os.path.join(work, f"dataset-{a.small}-{a.large_mib}")
    if not os.path.exists(stamp):
        shutil.rmtree(os.path.join(work, "root"), ignore_errors=True)
        os.makedirs(os.path.join(work, "root"))
        subprocess.run([sys.executable, gen, "generate", data, "--small", str(a.small),
                        "--large-mib", str(a.large_mib)], check=True)
        open(stamp, "w").close()
    if a.s3:
        return s3_bench(a, work, data)
    undo = os.path.join(work, "undo")
    # room for the data set, 4 KiB per small file at least, and ext4's own
    target_gib = 2 + (a.large_mib * 13 // 10 + a.small // 50) // 1024

    all_tools = {
        "carryover": lambda: Carryover(work, a.binary),
        "tar-zstd": lambda: TarZstd(work),
        "restic": lambda: Restic(work),
    }
    names = a.tools.split(",")
    results = {n: [] for n in names}
    for r in range(a.runs):
        tools = [all_tools[n]() for n in names]
        row = {t.name: {} for t in tools}
        for t in tools:
            t.reset()
            drop_caches(a.cold)
            row[t.name]["snap1"] = t.capture()
            row[t.name]["stored"] = du(t.store)
        for t in tools:
            drop_caches(a.cold)
            row[t.name]["noop"] = t.capture()
            row[t.name]["noop_added"] = du(t.store) - row[t.name]["stored"]
        shutil.rmtree(undo, ignore_errors=True)
        subprocess.run([sys.executable, gen, "mutate", data, undo], check=True, stdout=subprocess.DEVNULL)
        try:
            for t in tools:
                before = du(t.store)
                drop_caches(a.cold)
                row[t.name]["mutate"] = t.capture()
                row[t.name]["mutate_added"] = du(t.store) - before
            for t in tools:
                with FreshFs(a, t.restore_dir, target_gib):
                    drop_caches(a.cold)
                    row[t.name]["restore"] = t.restore()
                    if a.check:
                        orig = os.path.join(work, "orig.json")
                        copy = os.path.join(work, "copy.json")
                        compare = [sys.executable, os.path.join(SHARED, "compare_trees.py")]
                        subprocess.run(compare + ["manifest", data, orig], check=True)
                        subprocess.run(compare + ["manifest", t.restored(), copy], check=True)
                        subprocess.run(compare + ["compare", orig, copy, "--label", t.name], check=False)
        finally:
            subprocess.run([sys.executable, gen, "revert", data, undo], check=True, stdout=subprocess.DEVNULL)
        for t in tools:
            results[t.name].append(row[t.name])
            t.reset() if t.name != "restic" else shutil.rmtree(t.store, ignore_errors=True)

    def med(name, key, idx=None):
        vals = sorted((r[key][idx] if idx is not None else r[key]) for r in results[name])
        return vals[len(vals) // 2]

    print(f"\n{a.small} small files + {a.large_mib} MiB large, {a.runs} run(s){', cold cache' if a.cold else ''}; medians\n")
    print("| tool | capture s | RSS MiB | stored MB | no-op s | no-op RSS | mutate s | +MB | restore s | restore RSS |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in names:
        print(f"| {n} | {med(n, 'snap1', 0):.2f} | {med(n, 'snap1', 1):.0f} | {med(n, 'stored') / 1e6:.0f} | "
              f"{med(n, 'noop', 0):.2f} | {med(n, 'noop', 1):.0f} | {med(n, 'mutate', 0):.2f} | "
              f"{med(n, 'mutate_added') / 1e6:.1f} | {med(n, 'restore', 0):.2f} | {med(n, 'restore', 1):.0f} |")
    with open(os.path.join(work, "results.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
