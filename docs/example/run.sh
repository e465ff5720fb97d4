#!/usr/bin/env bash
# The README's worked example, for real: an old Debian 12 server as a directory tree (its
# hostname, DNS, a user, a service unit, nginx and its site, data under /srv/app), a
# capture into a store, and the restore onto a fresh Debian 13 tree. Prints each command
# and its real output. Usage: docs/example/run.sh [path/to/carryover]
set -euo pipefail
bin=${1:-$(dirname "$0")/../../target/debug/carryover}
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
old=$w/old new=$w/new store=$w/store
f() { mkdir -p "$(dirname "$1")"; printf '%b' "$2" > "$1"; }
# the old server
f "$old/etc/os-release" 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n'
f "$old/etc/machine-id" '0123456789abcdef0123456789abcdef\n'
f "$old/sys/class/dmi/id/product_uuid" '4C4C4544-0042-3510-8053-B4C04F4A4D32\n'
f "$old/etc/hostname" 'web01\n'
f "$old/etc/hosts" '127.0.0.1\tlocalhost\n127.0.1.1\tweb01.example.com web01\n10.0.0.5\tdb01.internal db01\n'
f "$old/etc/resolv.conf" 'search example.com\nnameserver 10.0.0.2\n'
f "$old/etc/passwd" 'root:x:0:0:root:/root:/bin/bash\nalice:x:1001:1001:Alice:/home/alice:/bin/bash\n'
f "$old/etc/group" 'root:x:0:\nsudo:x:27:alice\nalice:x:1001:\n'
f "$old/etc/shadow" 'root:*:19800:0:99999:7:::\nalice:!:19800:0:99999:7:::\n'
f "$old/etc/systemd/system/app.service" '[Unit]\nDescription=The app\n[Service]\nExecStart=/srv/app/bin/app\nUser=alice\n[Install]\nWantedBy=multi-user.target\n'
mkdir -p "$old/etc/systemd/system/multi-user.target.wants"
ln -s /etc/systemd/system/app.service "$old/etc/systemd/system/multi-user.target.wants/app.service"
f "$old/var/lib/dpkg/status" 'Package: nginx\nStatus: install ok installed\nPriority: optional\nVersion: 1.22.1-9\nArchitecture: amd64\n\nPackage: base-files\nStatus: install ok installed\nPriority: required\nEssential: yes\nVersion: 12.4\nArchitecture: amd64\n'
f "$old/var/lib/dpkg/info/base-files.list" '/etc/os-release\n'
f "$old/etc/nginx/sites-available/app" 'server {\n  listen 80;\n  root /srv/app/www;\n}\n'
mkdir -p "$old/etc/nginx/sites-enabled"
ln -s ../sites-available/app "$old/etc/nginx/sites-enabled/app"
f "$old/srv/app/www/index.html" '<h1>web01</h1>\n'
f "$old/srv/app/bin/app" '#!/bin/sh\nexec sleep infinity\n'
chmod 0755 "$old/srv/app/bin/app"
chown -R 1001:1001 "$old/srv/app"
# the fresh image
f "$new/etc/os-release" 'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nID=debian\nVERSION_ID="13"\nVERSION_CODENAME=trixie\n'
f "$new/etc/machine-id" 'fedcba9876543210fedcba9876543210\n'
f "$new/sys/class/dmi/id/product_uuid" '4C4C4544-0042-3510-8053-B4C04F4A4D32\n'
f "$new/etc/hostname" 'localhost\n'
f "$new/etc/hosts" '127.0.0.1\tlocalhost\n'
f "$new/etc/passwd" 'root:x:0:0:root:/root:/bin/bash\ndebian:x:1000:1000:Debian:/home/debian:/bin/bash\n'
f "$new/etc/group" 'root:x:0:\nsudo:x:27:debian\ndebian:x:1000:\n'
f "$new/etc/shadow" 'root:*:20000:0:99999:7:::\ndebian:!:20000:0:99999:7:::\n'
f "$new/var/lib/dpkg/status" 'Package: base-files\nStatus: install ok installed\nPriority: required\nVersion: 13.8\nArchitecture: amd64\n'
f "$new/var/lib/apt/lists/deb.debian.org_debian_dists_trixie_main_binary-amd64_Packages" 'Package: nginx\nVersion: 1.26.3-3\n'
mkdir -p "$new/etc/systemd/system"
run() { echo "\$ carryover $*"; "$bin" "$@" 2>&1 | sed "s#$w#/x#g" || true; echo; }
run check --root "$old" --path /srv/app
run capture --root "$old" --store "$store" --path /srv/app
run snapshots list --store "$store"
run restore --root "$new" --store "$store" --dry-run
run restore --root "$new" --store "$store"
run status --root "$new" --long
