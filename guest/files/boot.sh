#!/bin/sh
# A small cloud-init for the kova test guest. It reads the NoCloud seed (meta-data, user-data,
# network-config v2), applies what tests need, and prints one machine-readable line on ttyS0:
#   KOVA-GUEST-BOOTED hostname=<h> instance-id=<id> ip=<a.b.c.d|none> userdata=<result>
# <result> is none, unsupported, script:rc=N or cloud-config:keys=N:runcmd=N:rc=N; for MIME
# multipart user-data, one per part joined by "+".
PATH=/sbin:/bin:/usr/sbin:/usr/bin
export PATH
say() { echo "kova-guest: $*"; }
K=/run/kova
mkdir -p $K /root /var/log
chmod 700 /root

while read -r m; do
  insmod "/lib/modules/$m.ko" 2>/dev/null || say "insmod $m failed"
done < /etc/kova/modules
acpid -c /etc/acpi 2>/dev/null

# flatten FILE writes FILE.flat (path<TAB>value lines, see yaml.awk).
flatten() { awk -f /etc/kova/yaml.awk "$1" > "$1.flat"; }
# get FLAT PATH prints the value at PATH, decoded.
get() {
  P="$2" awk -F '\t' 'BEGIN { k = ENVIRON["P"] } $1 == k { print substr($0, length(k) + 2); exit }' "$1" |
    { IFS= read -r v && printf '%b' "$v"; }
}
# children FLAT PREFIX prints the distinct paths one level below PREFIX ("a.b", "a[0]", ...).
children() {
  P="$2" awk -F '\t' '
    BEGIN { p = ENVIRON["P"]; n = length(p) }
    substr($1, 1, n) == p && length($1) > n {
      r = substr($1, n + 1); c = substr(r, 1, 1)
      if (c == ".") { r = substr(r, 2); m = match(r, /[.[]/); k = p "." (m ? substr(r, 1, m - 1) : r) }
      else if (c == "[") k = p substr(r, 1, index(r, "]"))
      else next
      if (!(k in seen)) { seen[k] = 1; print k }
    }' "$1"
}

# The seed is an ISO 9660 volume labelled cidata (or CIDATA). busybox has no blkid, so read the
# volume id from the primary volume descriptor (sector 16, offset 40).
label_of() { dd if="$1" bs=1 skip=32808 count=32 2>/dev/null | tr -d ' \000'; }
find_seed() {
  i=0
  while [ $i -lt 150 ]; do
    for d in /dev/sr* /dev/vd*; do
      [ -b "$d" ] || continue
      case "$(label_of "$d")" in cidata|CIDATA) echo "$d"; return 0 ;; esac
    done
    i=$((i + 1)); usleep 100000
  done
  return 1
}
SEED=$K/seed
mkdir -p $SEED
if dev=$(find_seed) && mount -t iso9660 -o ro "$dev" $SEED; then
  say "NoCloud seed on $dev"
else
  say "no NoCloud seed found"
fi

iid=none
host=localhost
if [ -f $SEED/meta-data ]; then
  cp $SEED/meta-data $K/meta-data && flatten $K/meta-data
  v=$(get $K/meta-data.flat instance-id) && [ -n "$v" ] && iid=$v
  v=$(get $K/meta-data.flat local-hostname) && [ -n "$v" ] && host=$v
fi
hostname "$host"
echo "$host" > /etc/hostname
printf '127.0.0.1 localhost\n127.0.1.1 %s\n' "$host" > /etc/hosts

ip link set lo up
iface_by_mac() {
  for n in /sys/class/net/*; do
    [ "$(cat "$n/address" 2>/dev/null)" = "$1" ] && { basename "$n"; return 0; }
  done
  return 1
}
first_nic() {
  for n in /sys/class/net/*; do [ "$(basename "$n")" != lo ] && [ -e "$n" ] && { basename "$n"; return 0; }; done
  return 1
}
dhcp() { ip link set "$1" up; udhcpc -i "$1" -s /etc/kova/udhcpc.sh -n -q -t 3 -T 1 >/dev/null 2>&1 || say "no DHCP lease on $1"; }
# virtio_net probes asynchronously: give NICs a moment to appear.
i=0; while ! first_nic >/dev/null && [ $i -lt 30 ]; do i=$((i + 1)); usleep 100000; done

NC=$K/network-config
if [ -f $SEED/network-config ]; then
  cp $SEED/network-config $NC && flatten $NC
  # cloud-init accepts the v2 document with or without a top-level "network:" key.
  top=ethernets; [ -n "$(children $NC.flat network.ethernets)" ] && top=network.ethernets
  for e in $(children $NC.flat $top); do
    dev=${e##*.}
    mac=$(get $NC.flat $e.match.macaddress | tr A-F a-f)
    if [ -n "$mac" ]; then dev=$(iface_by_mac "$mac") || { say "no NIC with MAC $mac"; continue; }; fi
    new=$(get $NC.flat $e.set-name)
    if [ -n "$new" ] && [ "$new" != "$dev" ]; then ip link set "$dev" name "$new" && dev=$new; fi
    m=$(get $NC.flat $e.mtu); [ -n "$m" ] && ip link set "$dev" mtu "$m"
    ip link set "$dev" up
    for k in $(children $NC.flat $e.addresses); do ip addr add "$(get $NC.flat $k)" dev "$dev"; done
    gw=$(get $NC.flat $e.gateway4); [ -n "$gw" ] && ip route replace default via "$gw" dev "$dev"
    for r in $(children $NC.flat $e.routes); do
      to=$(get $NC.flat $r.to); via=$(get $NC.flat $r.via)
      case "$to" in default|0.0.0.0/0) to=default ;; *:*) continue ;; esac
      ip route replace "$to" via "$via" dev "$dev"
    done
    ns=""; for k in $(children $NC.flat $e.nameservers.addresses); do ns="$ns $(get $NC.flat $k)"; done
    if [ -n "$ns" ]; then for d in $ns; do echo "nameserver $d"; done > /etc/resolv.conf; fi
    case "$(get $NC.flat $e.dhcp4)" in true|yes|on) dhcp "$dev" ;; esac
  done
elif dev=$(first_nic); then
  dhcp "$dev"
fi
ip=$(ip -4 -o addr show scope global | awk '{ split($4, a, "/"); print a[1]; exit }')

# Quotes one argument for sh, as cloud-init does with runcmd entries given as lists.
q() { printf "'%s' " "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
# Each handler writes its result to $K/result.<tag>; the user's output goes to the console.
run_script() {
  cp "$1" "$K/user-script.$2" && chmod 700 "$K/user-script.$2"
  "$K/user-script.$2" </dev/null
  echo "script:rc=$?" > "$K/result.$2"
}
run_cloud_config() {
  f=$K/cloud-config.$2
  cp "$1" "$f" && flatten "$f"
  nk=0; nc=0; rc=0
  for k in $(children "$f.flat" ssh_authorized_keys); do
    mkdir -p /root/.ssh && chmod 700 /root/.ssh
    { get "$f.flat" "$k"; echo; } >> /root/.ssh/authorized_keys
    chmod 600 /root/.ssh/authorized_keys
    nk=$((nk + 1))
  done
  for k in $(children "$f.flat" runcmd); do
    args=$(children "$f.flat" "$k")
    if [ -n "$args" ]; then
      cmd=""; for a in $args; do cmd="$cmd$(q "$(get "$f.flat" "$a")")"; done
    else
      cmd=$(get "$f.flat" "$k")
    fi
    sh -c "$cmd" </dev/null || rc=$?
    nc=$((nc + 1))
  done
  echo "cloud-config:keys=$nk:runcmd=$nc:rc=$rc" > "$K/result.$2"
}
handle() {
  case "$(head -n 1 "$1")" in
    '#!'*) run_script "$1" "$2" ;;
    '#cloud-config'*) run_cloud_config "$1" "$2" ;;
    *) echo unsupported > "$K/result.$2" ;;
  esac
}
# Splits MIME multipart user-data into $K/part.N files; prints the part numbers.
split_mime() {
  B="$2" awk -v dir=$K '
    BEGIN { b = ENVIRON["B"] }
    { sub(/\r$/, "") }
    $0 == "--" b "--" { exit }
    $0 == "--" b { if (n) close(f); n++; f = dir "/part." n; hdr = 1; next }
    !n { next }
    hdr && $0 == "" { hdr = 0; printf "" > f; print n; next }
    hdr { next }
    { print > f }
  ' "$1"
}
result=none
UD=$SEED/user-data
if [ -s $UD ]; then
  case "$(head -n 1 $UD)" in
    [Cc]ontent-[Tt]ype:*|[Mm][Ii][Mm][Ee]-[Vv]ersion:*)
      b=$(sed -n 's/.*boundary="\{0,1\}\([^";]*\)"\{0,1\}.*/\1/p' $UD | head -n 1)
      result=""
      for n in $(split_mime $UD "$b"); do
        handle "$K/part.$n" "part$n"
        result="$result${result:++}$(cat "$K/result.part$n")"
      done
      ;;
    *)
      handle $UD main
      result=$(cat $K/result.main)
      ;;
  esac
fi

echo "KOVA-GUEST-BOOTED hostname=$(hostname) instance-id=$iid ip=${ip:-none} userdata=$result"
