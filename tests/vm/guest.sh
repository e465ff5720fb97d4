#!/bin/sh
# VM test, guest side (run by vm-guest.service from the host's 9p share): what the
# operator does on the old OS, and what the cloud's user-data does on the new one; then
# the checks, written to the share for the host to compare.
H=/mnt/host
out=$H/out
mkdir -p "$out"
phase=$(cat "$H/phase")
exec >>"$out/$phase-guest.log" 2>&1
mark() { echo "VMTEST $*" > /dev/console; echo "VMTEST $*"; }
mark "guest-start $phase"

old() {
  set -ex
  # a data disk with LVM + ext4 (the store and data), an NTFS data disk named by device
  pvcreate -ff -y /dev/vdb
  vgcreate datavg /dev/vdb
  lvcreate -y -n lvdata -l 100%FREE datavg
  mkfs.ext4 -q /dev/datavg/lvdata
  mkntfs -Q -F -L WINDATA /dev/vdc
  mkdir -p /data /mnt/win
  echo "/dev/mapper/datavg-lvdata /data ext4 defaults 0 2" >> /etc/fstab
  echo "/dev/vdc /mnt/win ntfs-3g defaults 0 0" >> /etc/fstab
  mount -a
  findmnt /data && findmnt /mnt/win
  # the server's settings
  echo web01 > /etc/hostname
  hostname web01
  printf 'nameserver 10.0.2.3\nnameserver 192.0.2.53\nsearch corp.example\n' > /etc/resolv.conf
  echo "10.1.2.3 db01.corp.example db01" >> /etc/hosts
  useradd -m -u 1500 -s /bin/sh alice
  printf '[Unit]\nDescription=a custom service\n\n[Service]\nExecStart=/bin/sleep infinity\n\n[Install]\nWantedBy=multi-user.target\n' > /etc/systemd/system/hello.service
  systemctl enable hello.service
  systemctl start hello.service
  echo "17 3 * * * alice /bin/true" > /etc/cron.d/nightly
  # data: on the LVM disk and on the system disk (captured into the store)
  mkdir -p /data/app/sub /srv/www
  head -c 24000000 /dev/urandom > /data/app/blob
  i=0; while [ $i -lt 300 ]; do echo "file $i" > /data/app/sub/f$i; i=$((i + 1)); done
  echo '<h1>web01</h1><p>carryover-vm-marker-5f1c</p>' > /srv/www/index.html
  chown -R alice:alice /data/app /srv/www
  echo "on the NTFS disk" > /mnt/win/readme.txt
  # a login: alice's SSH key, in her home on the system disk; a file of hers on the data
  # disk outside the data paths (it stays where it is: its owner must still be alice)
  ssh-keygen -q -t ed25519 -N '' -C alice@laptop -f /root/alice_key
  mkdir -p /home/alice/.ssh
  cp /root/alice_key.pub /home/alice/.ssh/authorized_keys
  chown -R alice:alice /home/alice/.ssh
  chmod 700 /home/alice/.ssh
  chmod 600 /home/alice/.ssh/authorized_keys
  ssh-keygen -lf /home/alice/.ssh/authorized_keys > "$out/old-alice-keys.fp"
  # sshd settings the operator changed: carried as a drop-in checked by `sshd -t` live
  mkdir -p /etc/ssh/sshd_config.d
  printf 'PasswordAuthentication no\nMaxAuthTries 3\n' > /etc/ssh/sshd_config.d/50-ops.conf
  mkdir -p /data/other
  echo "alice's, on the data disk" > /data/other/alice.txt
  chown alice:alice /data/other/alice.txt
  # the service (the image has nginx-light and PostgreSQL): a custom site from /srv/www
  # that replaces nginx's default one, and a database with a table and a row
  if [ -f "$H/service" ]; then
    cat > /etc/nginx/sites-available/web01 <<'NGX'
server {
    listen 80 default_server;
    listen [::]:80 default_server;
    server_name web01;
    root /srv/www;
    index index.html;
}
NGX
    ln -s ../sites-available/web01 /etc/nginx/sites-enabled/web01
    rm -f /etc/nginx/sites-enabled/default
    nginx -t
    systemctl restart nginx.service
    curl -fsS http://127.0.0.1/ > "$out/old-page.html"
    n=0
    until su postgres -s /bin/sh -c "psql -Atqc 'select 1'" >/dev/null 2>&1; do
      n=$((n + 1)); [ $n -lt 90 ] || break; sleep 2
    done
    su postgres -s /bin/sh -c "createdb app"
    su postgres -s /bin/sh -c "psql -d app -c \"create table notes (id int primary key, body text); insert into notes values (1, 'a row from bookworm')\""
    su postgres -s /bin/sh -c "psql -d app -Atc 'select body from notes where id = 1'" > "$out/old-pg-row"
    su postgres -s /bin/sh -c "psql -Atc 'show server_version'" > "$out/old-pg-version"
    # the example hooks, as the README says: root's, 0755
    ex=/usr/share/carryover/examples/hooks
    install -d -m 0755 /etc/carryover/hooks/pre-capture.d /etc/carryover/hooks/post-restore.d
    install -m 0755 -o root -g root $ex/pre-capture.d/10-postgresql-dump /etc/carryover/hooks/pre-capture.d/
    install -m 0755 -o root -g root $ex/post-restore.d/90-postgresql-load /etc/carryover/hooks/post-restore.d/
    db_path=', "/var/backups/carryover-db"'
  fi
  # carryover, installed from the .deb: config, token
  printf 'vm-test-token\n' > /etc/carryover/token
  chmod 600 /etc/carryover/token
  mkdir -p /etc/carryover/config.d
  cat > /etc/carryover/config.d/10-vm.toml <<TOML
[store]
url = "/data/carryover"
[data]
paths = ["/data/app", "/srv/www"${db_path:-}]
[report]
url = "http://10.0.2.100:8080"
send_timeout_seconds = 10
[identity]
timeout_ms = 500
TOML
  # what the checks compare after the change
  (cd /data/app && find . -type f | sort | xargs sha256sum) > "$out/old-data.sums"
  (cd /srv/www && find . -type f | sort | xargs sha256sum) > "$out/old-www.sums"
  for k in /etc/ssh/ssh_host_*_key.pub; do ssh-keygen -lf "$k"; done > "$out/old-ssh.fp"
  id alice > "$out/old-id"
  cat /etc/os-release > "$out/old-os-release"
  ldd --version | head -n1 > "$out/old-glibc"
  set +e
  carryover check --format json > "$out/check.json"
  echo "check exit $?" >> "$out/check.json.rc"
  t0=$(date +%s.%N)
  carryover capture --format json > "$out/capture.json"
  echo $? > "$out/capture.rc"
  t1=$(date +%s.%N)
  echo "$t0 $t1" > "$out/capture.time"
  carryover userdata > "$out/user-data"
  echo $? > "$out/userdata.rc"
  # a last capture killed right after its snapshot was sealed (its post-capture step never
  # ran), then newer data and a new hostname: rebooting this old OS must change nothing
  mkdir -p /etc/carryover/hooks/post-capture.d
  printf '#!/bin/sh\nkill -9 $PPID\n' > /etc/carryover/hooks/post-capture.d/10-crash
  chmod 0755 /etc/carryover/hooks/post-capture.d/10-crash
  carryover capture --format json > "$out/capture-killed.json"
  echo $? > "$out/capture-killed.rc"
  rm -f /etc/carryover/hooks/post-capture.d/10-crash
  echo "newer than any snapshot" > /data/app/sub/f0
  echo web01-after > /etc/hostname
  sync
}

oldreboot() {
  # the old OS boots again: its restore unit (enabled by the package) must find nothing due
  n=0
  while [ $n -lt 600 ]; do
    st=$(systemctl show -p ActiveState --value carryover-restore.service)
    [ "$st" = active ] || [ "$st" = failed ] && break
    sleep 1
    n=$((n + 1))
  done
  journalctl -b -u carryover-restore.service --no-pager > "$out/oldreboot-journal.log"
  {
    echo "restore_unit=$st"
    echo "etc_hostname=$(cat /etc/hostname)"
    echo "f0=$(cat /data/app/sub/f0)"
  } > "$out/oldreboot.facts"
  sync
}

broken() {
  # the new OS whose store disk is broken: the user-data's runcmd must report the failure
  sh -x "$H/userdata.sh" > "$out/userdata-run.log" 2>&1
  echo $? > "$out/userdata-run.rc"
  sync
}

new() {
  if [ ! -f /var/lib/vm-test-userdata-done ]; then
    # the cloud's part: cloud-init would run the user-data's runcmd; the host extracted it
    sh -x "$H/userdata.sh" > "$out/userdata-run.log" 2>&1
    echo $? > "$out/userdata-run.rc"
    touch /var/lib/vm-test-userdata-done
    sync
  fi
  n=0
  while [ $n -lt 900 ]; do
    st=$(systemctl show -p ActiveState --value carryover-restore.service)
    [ "$st" = active ] || [ "$st" = failed ] && break
    sleep 1
    n=$((n + 1))
  done
  mark "restore-finished $st after ${n}s"
  journalctl --sync; sleep 2
  journalctl -b -u carryover-restore.service --no-pager > "$out/restore-journal.log"
  {
    echo "hostname=$(hostname)"
    echo "etc_hostname=$(cat /etc/hostname)"
    echo "nameservers=$(awk '/^nameserver/{printf "%s ", $2}' /etc/resolv.conf)"
    echo "search=$(awk '/^search/{$1=""; print}' /etc/resolv.conf)"
    echo "hosts_db01=$(grep -c 'db01.corp.example' /etc/hosts)"
    echo "hello=$(systemctl is-active hello.service)"
    echo "cron=$(cat /etc/cron.d/nightly)"
    echo "data_source=$(findmnt -n -o SOURCE /data)"
    echo "win_fstype=$(findmnt -n -o FSTYPE /mnt/win)"
    echo "fstab_data=$(awk '$2 == "/data"' /etc/fstab | head -n1)"
    echo "fstab_win=$(awk '$2 == "/mnt/win"' /etc/fstab | head -n1)"
    echo "win_readme=$(cat /mnt/win/readme.txt)"
    echo "restore_unit=$st"
  } > "$out/new.facts"
  if [ -f "$H/service" ]; then
    {
      echo "nginx=$(systemctl is-active nginx.service)"
      echo "sites_enabled=$(ls /etc/nginx/sites-enabled | tr '\n' ' ')"
      echo "pg_row=$(su postgres -s /bin/sh -c "psql -d app -Atc 'select body from notes where id = 1'" 2>&1 | tr '\n' ' ')"
      echo "pg_version=$(su postgres -s /bin/sh -c "psql -Atc 'show server_version'" 2>&1 | tr '\n' ' ')"
      echo "pg_units=$(systemctl list-units --state=active --plain --no-legend 'postgresql*' | awk '{printf "%s ", $1}')"
      echo "hooks=$(stat -c '%n %U:%G %a' /etc/carryover/hooks/post-restore.d/* 2>&1 | tr '\n' ' ')"
    } >> "$out/new.facts"
    journalctl -b -u carryover-restore.service -o short-unix --no-pager > "$out/restore-journal-unix.log"
  fi
  id alice > "$out/new-id"
  for k in /etc/ssh/ssh_host_*_key.pub; do ssh-keygen -lf "$k"; done > "$out/new-ssh.fp"
  (cd /data/app && find . -type f | sort | xargs sha256sum) > "$out/new-data.sums"
  (cd /srv/www && find . -type f | sort | xargs sha256sum) > "$out/new-www.sums"
  stat -c '%U:%G' /data/app/blob /srv/www/index.html > "$out/new-owners"
  su - alice -c id > "$out/new-su-id" 2>&1
  ssh-keygen -lf /home/alice/.ssh/authorized_keys > "$out/new-alice-keys.fp" 2>&1
  stat -c '%U:%G %a' /home/alice/.ssh /home/alice/.ssh/authorized_keys > "$out/new-alice-ssh-modes" 2>&1
  stat -c '%U:%G' /data/other/alice.txt > "$out/new-other-owner" 2>&1
  sshd -T 2>&1 | grep -E '^(passwordauthentication|maxauthtries) ' > "$out/new-sshd" 2>&1
  cat /etc/os-release > "$out/new-os-release"
  sync
  if [ -f "$H/fetch" ]; then
    # the host fetches the page through qemu's hostfwd, then says so
    mark "serving"
    n=0
    while [ ! -f "$H/fetched" ] && [ $n -lt 300 ]; do sleep 1; n=$((n + 1)); done
  fi
}

case $phase in
  old) old ;;
  oldreboot) oldreboot ;;
  new) new ;;
  broken) broken ;;
esac
mark "guest-done $phase"
sync
systemctl poweroff
