#!/usr/bin/env bash
# Installs and starts what a kova host needs, on Debian 12, as root. Idempotent: safe to re-run.
# Like DevStack's stack.sh it works without systemd (containers, CI): daemons are started by hand.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
  echo "install-host-deps: must run as root (try: sudo $0)" >&2
  exit 1
fi
if [ ! -f /etc/debian_version ]; then
  echo "install-host-deps: only Debian/Ubuntu hosts are supported; install etcd, qemu, libvirt, dnsmasq, nftables, genisoimage by hand" >&2
  exit 1
fi

PACKAGES=(
  etcd-server etcd-client openssl
  qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-clients
  dnsmasq-base nftables iproute2 procps genisoimage busybox-static tini
)
# For the tests only (e2e/monitoring.test.ts runs the real Prometheus): kova never needs them.
# `kova up` runs this script with KOVA_RUNTIME_DEPS_ONLY=1 and skips them.
TEST_PACKAGES=(prometheus)
if [ "${KOVA_RUNTIME_DEPS_ONLY:-0}" != 1 ]; then
  PACKAGES+=("${TEST_PACKAGES[@]}")
fi

step() { echo "==> install-host-deps: $*"; }

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  step "apt-get update"
  DEBIAN_FRONTEND=noninteractive apt-get update -q
  step "installing ${missing[*]}"
  # policy-rc.d keeps package scripts from trying to start services on hosts without an init.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confnew -o Dpkg::Options::=--force-confdef "${missing[@]}"
else
  step "all packages present"
fi

# etcd 3.5, the series kube-apiserver is built and tested against. Debian 12 ships 3.4, whose
# write transactions (every kova write is one) copy the backend's buffer of uncommitted writes:
# measured here, 165-185 us of etcd CPU per create against 100-115 us with 3.5 (docs/ha.md).
# So, like DevStack fetching its etcd release, this fetches Debian 13's etcd-server and
# etcd-client with apt (signatures and hashes checked against the Debian keys this host already
# trusts) into a private apt state, and unpacks their binaries into /usr/local/lib/kova: the
# system's sources and dpkg database are left alone. /usr/local/bin links come first on PATH.
# Offline or refused, kova keeps Debian 12's etcd 3.4, which works. KOVA_ETCD_UPGRADE=0 skips it.
ETCD_MIN_MINOR=5
# The minor version of etcd 3 at $1 ("5" for 3.5.16), or nothing when it is missing or does not run.
etcd_minor() { { "$1" --version 2>/dev/null || true; } | sed -n 's/^etcd Version: 3\.\([0-9]*\)\..*/\1/p' | head -n1; }
install_etcd_35() {
  local have
  have=$(etcd_minor "$(command -v etcd || echo /usr/bin/etcd)")
  local keeping="keeping etcd 3.${have:-?}"
  if [ -n "$have" ] && [ "$have" -ge "$ETCD_MIN_MINOR" ]; then
    step "etcd 3.$have present"
    return 0
  fi
  if [ "${KOVA_ETCD_UPGRADE:-1}" = 0 ]; then
    step "$keeping (KOVA_ETCD_UPGRADE=0)"
    return 0
  fi
  step "fetching etcd 3.5 (Debian 13 packages; Debian 12 has 3.${have:-?})"
  local root=/var/cache/kova/apt-etcd
  mkdir -p "$root/lists/partial" "$root/archives/partial" "$root/etc/preferences.d" "$root/etc/sources.list.d"
  cat >"$root/etc/sources.list" <<'EOF'
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
EOF
  local apt_opts=(-o "Dir::Etc::SourceList=$root/etc/sources.list" -o "Dir::Etc::SourceParts=$root/etc/sources.list.d"
    -o "Dir::Etc::Preferences=$root/etc/preferences" -o "Dir::Etc::PreferencesParts=$root/etc/preferences.d"
    -o "Dir::State::Lists=$root/lists" -o "Dir::Cache::Archives=$root/archives"
    -o "Dir::Cache::pkgcache=$root/pkgcache.bin" -o "Dir::Cache::srcpkgcache=$root/srcpkgcache.bin" -o Acquire::Retries=2)
  if ! apt-get "${apt_opts[@]}" update -q >"$root/update.log" 2>&1; then
    step "warning: cannot fetch the Debian 13 package lists (see $root/update.log); $keeping"
    return 0
  fi
  local work
  work=$(mktemp -d)
  if ! (cd "$work" && apt-get "${apt_opts[@]}" download etcd-server etcd-client >"$root/download.log" 2>&1); then
    step "warning: cannot download etcd 3.5 (see $root/download.log); $keeping"
    rm -rf "$work"
    return 0
  fi
  local version
  version=$(dpkg-deb -f "$work"/etcd-server_*.deb Version)
  local dest="/usr/local/lib/kova/etcd-${version%%-*}"
  rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
  for deb in "$work"/etcd-server_*.deb "$work"/etcd-client_*.deb; do dpkg-deb -x "$deb" "$dest.tmp/root"; done
  mkdir -p "$dest.tmp/bin"
  for b in etcd etcdctl etcdutl; do
    if [ -x "$dest.tmp/root/usr/bin/$b" ]; then mv "$dest.tmp/root/usr/bin/$b" "$dest.tmp/bin/$b"; fi
  done
  rm -rf "$dest.tmp/root" "$work"
  if [ -z "$(etcd_minor "$dest.tmp/bin/etcd")" ]; then
    step "warning: the downloaded etcd does not run here; $keeping"
    rm -rf "$dest.tmp"
    return 0
  fi
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
  mkdir -p /usr/local/bin
  for b in "$dest"/bin/*; do ln -sfn "$b" "/usr/local/bin/$(basename "$b")"; done
  step "installed $("$dest/bin/etcd" --version | head -n1) in $dest (linked from /usr/local/bin)"
}
install_etcd_35

# The Debian etcd-server package may start a system etcd on 2379; kova runs its own, on free ports.
# So may the prometheus package (on :9090); the tests run their own, on free ports.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now etcd >/dev/null 2>&1 || true
  systemctl disable --now prometheus >/dev/null 2>&1 || true
fi

# In the background, in its own session, under tini as its children's reaper (see libvirtd below).
start_reaped() {
  setsid tini -s -- "$@" </dev/null >>"/var/log/$1.out" 2>&1 &
}

start_daemon() {
  local name=$1; shift
  if pgrep -x "$name" >/dev/null 2>&1; then
    step "$name already running"
  else
    step "starting $name"
    "$@"
  fi
}

# Without udev nothing gives /dev/kvm its usual group and mode; libvirt then discards its QEMU
# capability cache on every domain start (each `virsh create` takes ~90 s instead of 0.3 s).
if [ -e /dev/kvm ] && getent group kvm >/dev/null 2>&1; then
  chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
fi

if command -v libvirtd >/dev/null 2>&1; then
  mkdir -p /var/log/libvirt /var/run/libvirt /var/lib/libvirt/images
  start_daemon virtlogd virtlogd -d
  # libvirt daemonizes QEMU: a stopped guest's process is an orphan that someone must reap
  # before libvirt sees it gone. Without systemd, PID 1 may reap late (a container's init: up
  # to ~2 s per guest stop, destroy or migration); tini as a child subreaper reaps at once.
  if command -v tini >/dev/null 2>&1; then
    start_daemon libvirtd start_reaped libvirtd
  else
    start_daemon libvirtd libvirtd -d
  fi
  for i in $(seq 1 50); do
    virsh -c qemu:///system version >/dev/null 2>&1 && break
    sleep 0.2
  done
  virsh -c qemu:///system version >/dev/null 2>&1 && step "libvirt answers on qemu:///system" || step "warning: libvirt does not answer yet"
fi

# As the libvirt driver decides (detectKvm): hardware KVM (kvm_intel or kvm_amd) behind /dev/kvm.
# Other modules behind it, such as kvm_pvm, do not boot ordinary guest kernels.
if [ -e /dev/kvm ] && { [ -e /sys/module/kvm_intel ] || [ -e /sys/module/kvm_amd ]; }; then
  step "KVM available"
else
  step "no hardware KVM (kvm_intel or kvm_amd behind /dev/kvm): guests will run under QEMU TCG (slower)"
fi
step "done"
