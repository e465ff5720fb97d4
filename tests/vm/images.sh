#!/usr/bin/env bash
# Builds the VM test's guest root trees once and caches them: Debian trees for the "old
# OS" (bookworm; bullseye, glibc 2.31, the oldest release Debian's mirror still serves)
# and a trixie tree (the "new OS"), debootstrapped with a kernel, systemd,
# lvm2, ntfs-3g, cron and OpenSSH, DHCP through systemd-networkd, and a unit that runs
# the test's guest script from the host's 9p share. carryover itself is NOT in them: the
# test installs the .deb into a copy of the old tree, and the new OS gets carryover only
# through the user-data.
#
#   tests/vm/images.sh CACHE_DIR [SUITE...]   → CACHE_DIR/SUITE/{root/,vmlinuz,initrd.img}
#
# SUITE: bullseye, bookworm, trixie (default: bookworm trixie); they are built in parallel.
set -euo pipefail
cache=${1:?cache dir}
shift
suites=("$@")
((${#suites[@]})) || suites=(bookworm trixie)
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$cache"
mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
# curl: cloud images have it (and python3, for cloud-init): the user-data's own failure
# report uses it
pkgs=linux-image-amd64,systemd-sysv,udev,kmod,lvm2,ntfs-3g,cron,openssh-server,iproute2,procps,e2fsprogs,ca-certificates,curl
# the old OS of the full scenario runs a service: nginx (a custom site) and PostgreSQL,
# installed by apt-get in the tree (so apt marks them as the user's choice)
service_pkgs="nginx-light postgresql"
# the recipe's hash names the cache entry: a change to the recipe (the package list and
# build() below, not the usage text or which suites are asked for) rebuilds
recipe=$( (echo "$pkgs $service_pkgs"; sed -n '/^build() {$/,/^}$/p' "$0") | sha256sum | cut -c1-12)

build() {
  local suite=$1 dir=$cache/$1
  if [ -f "$dir/done-$recipe" ]; then
    echo "== $suite image: cached ($dir)"
    return
  fi
  rm -rf "$dir"
  mkdir -p "$dir"
  echo "== $suite image: debootstrap from $mirror"
  local t0=$SECONDS
  debootstrap --variant=minbase --include="$pkgs" "$suite" "$dir/root" "$mirror" >"$dir/debootstrap.log" 2>&1 \
    || { tail -30 "$dir/debootstrap.log"; exit 1; }
  local r=$dir/root
  # apt's marks as a cloud image has them: the recipe's packages chosen, their
  # dependencies automatic (debootstrap leaves no extended_states: everything would look
  # chosen by hand)
  chroot "$r" sh -c 'dpkg-query -W -f "\${Package}\n" | xargs apt-mark auto' >/dev/null
  chroot "$r" apt-mark manual ${pkgs//,/ } >/dev/null
  if [ "$suite" = bookworm ]; then
    # started by nothing in the tree (policy-rc.d), enabled for the VM's boot; initdb
    # needs /proc and /dev/shm
    printf '#!/bin/sh\nexit 101\n' > "$r/usr/sbin/policy-rc.d"
    chmod 0755 "$r/usr/sbin/policy-rc.d"
    mount -t proc proc "$r/proc"
    mkdir -p "$r/dev/shm"
    mount -t tmpfs shm "$r/dev/shm"
    local ok=0
    chroot "$r" env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 \
      apt-get install -y -q --no-install-recommends $service_pkgs >"$dir/service.log" 2>&1 || ok=$?
    umount "$r/dev/shm" "$r/proc"
    rm -f "$r/usr/sbin/policy-rc.d"
    ((ok == 0)) || { tail -30 "$dir/service.log"; exit 1; }
    chroot "$r" apt-get clean
  fi
  echo "$suite-image" > "$r/etc/hostname"
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$r/etc/hosts"
  echo "LABEL=rootfs / ext4 defaults,errors=remount-ro 0 1" > "$r/etc/fstab"
  : > "$r/etc/machine-id"
  mkdir -p "$r/etc/systemd/network"
  printf '[Match]\nName=en*\n\n[Network]\nDHCP=yes\n' > "$r/etc/systemd/network/10-dhcp.network"
  chroot "$r" systemctl enable systemd-networkd.service >/dev/null 2>&1
  # the test's hand in the guest: mount the host share, run its script
  cat > "$r/etc/systemd/system/vm-guest.service" <<'UNIT'
[Unit]
Description=VM test: run the host's guest script
Wants=network-online.target
After=network-online.target local-fs.target

[Service]
Type=simple
# the 9p transport may come up after this starts (a TCG boot once ran the mount before
# the virtio channel was there: "no channels available", the guest idle until the host's
# timeout): tried for a minute ($$ is a literal $ to systemd)
ExecStartPre=/bin/sh -c 'mkdir -p /mnt/host; modprobe -q 9pnet_virtio; i=0; until mountpoint -q /mnt/host || mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 hostshare /mnt/host; do i=$$((i + 1)); [ $$i -lt 60 ] || exit 1; sleep 1; done'
ExecStart=/bin/sh /mnt/host/guest.sh
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
UNIT
  chroot "$r" systemctl enable vm-guest.service >/dev/null 2>&1
  # serial console login is not needed; keep boot quiet and quick
  chroot "$r" systemctl mask serial-getty@ttyS0.service getty@tty1.service apt-daily.timer apt-daily-upgrade.timer >/dev/null 2>&1 || true
  cp "$r"/boot/vmlinuz-* "$dir/vmlinuz"
  cp "$r"/boot/initrd.img-* "$dir/initrd.img"
  rm -rf "$r"/var/cache/apt/archives/*.deb
  touch "$dir/done-$recipe"
  echo "== $suite image: built in $((SECONDS - t0)) s"
}

pids=()
for s in "${suites[@]}"; do
  case $s in
    bullseye | bookworm | trixie) ;;
    *) echo "images.sh: no recipe for $s (bullseye, bookworm, trixie)" >&2; exit 2 ;;
  esac
  build "$s" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
