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
