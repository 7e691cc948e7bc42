#!/bin/sh
# One libvirtd of `kova up --hosts N` (cli/local-hosts.ts): run in the host's network namespace
# and in a private mount namespace (`ip netns exec NS unshare --mount --propagation private
# hack/local-libvirtd.sh ROOT`), it bind-mounts the host's own directories under ROOT over the
# system's libvirt directories and becomes that host's libvirtd, in the foreground (same pid,
# so the parent-death signal set by its parent still applies). No value is ever evaluated by
# a shell: ROOT is only used as a path.
#
# With tini installed, it runs libvirtd as a child subreaper (`tini -s`): libvirt daemonizes
# QEMU, so a guest's process is an orphan whose exit must be reaped by someone before libvirt
# sees it gone. Where PID 1 reaps late (a container's init), every guest stop, destroy and
# migration waited up to ~2 s for it; tini reaps at once. tini keeps the parent-death signal
# (-p) and libvirtd dies with tini; the guests, orphaned again, keep running.
set -eu
if [ "$#" -ne 1 ] || [ ! -f "$1/etc/libvirtd.conf" ]; then
  echo "usage: $0 ROOT (ROOT/etc/libvirtd.conf must exist)" >&2
  exit 2
fi
root=$1
mount --make-rprivate /
for pair in etc:/etc/libvirt run:/run/libvirt lib:/var/lib/libvirt log:/var/log/libvirt cache:/var/cache/libvirt; do
  src="$root/${pair%%:*}"
  dst="${pair#*:}"
  mkdir -p -- "$src" "$dst"
  mount --bind -- "$src" "$dst"
done
if command -v tini >/dev/null 2>&1 && command -v setpriv >/dev/null 2>&1; then
  exec tini -s -p SIGKILL -- setpriv --pdeathsig KILL -- libvirtd -f /etc/libvirt/libvirtd.conf -p /run/libvirt/libvirtd.pid
fi
exec libvirtd -f /etc/libvirt/libvirtd.conf -p /run/libvirt/libvirtd.pid
