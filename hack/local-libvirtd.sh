#!/bin/sh
# One libvirtd of `kova up --hosts N` (cli/local-hosts.ts): run in the host's network namespace
# and in a private mount namespace (`ip netns exec NS unshare --mount --propagation private
# hack/local-libvirtd.sh ROOT`), it bind-mounts the host's own directories under ROOT over the
# system's libvirt directories and becomes that host's libvirtd, in the foreground (same pid,
# so the parent-death signal set by its parent still applies). No value is ever evaluated by
# a shell: ROOT is only used as a path.
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
exec libvirtd -f /etc/libvirt/libvirtd.conf -p /run/libvirt/libvirtd.pid
