// User-data for the test guest that reports its volumes on the serial console, so tests and
// benchmarks see what the guest sees: every 0.1 s (intervalMs) it lists /sys/block/vd* (but the root disk),
// and prints a line when a disk appears or changes (size, first bytes) and when one goes:
//   KOVA-DISK dev=vdb serial=<serial> size=<512-byte sectors> head=<first bytes, [A-Za-z0-9-]>
//   KOVA-DISK-GONE dev=vdb serial=<serial>
// With `write`, a disk whose first bytes are blank gets `KOVA-PATTERN-<serial>` written there
// (the known pattern) before it is reported; with `churn`, the guest keeps writing random data
// past the first MiB of every disk (writes in flight while a snapshot is taken).

export interface DiskProbeOptions {
  write?: boolean;
  churn?: boolean;
  /** How often the guest looks (default 100 ms). */
  intervalMs?: number;
}

export function diskProbeUserData(o: DiskProbeOptions = {}): string {
  return `#!/bin/sh
(
seen=""
while true; do
  now=""
  for d in /sys/block/vd*; do
    n=\${d##*/}
    [ "$n" = vda ] && continue
    [ -b /dev/$n ] || continue
    s=$(cat $d/serial 2>/dev/null)
    z=$(cat $d/size 2>/dev/null)
    h=$(dd if=/dev/$n bs=64 count=1 2>/dev/null | tr -cd 'A-Za-z0-9-')
    if [ -z "$h" ] && [ ${o.write ? 1 : 0} = 1 ] && [ -n "$s" ]; then
      printf 'KOVA-PATTERN-%s' "$s" | dd of=/dev/$n conv=notrunc 2>/dev/null
      sync
      h=$(dd if=/dev/$n bs=64 count=1 2>/dev/null | tr -cd 'A-Za-z0-9-')
    fi
    if [ ${o.churn ? 1 : 0} = 1 ]; then
      dd if=/dev/urandom of=/dev/$n bs=64k seek=16 count=8 conv=notrunc 2>/dev/null
    fi
    k="$n:$s:$z:$h"
    now="$now $k"
    case " $seen " in *" $k "*) ;; *) echo "KOVA-DISK dev=$n serial=$s size=$z head=$h" > /dev/ttyS0 ;; esac
  done
  for k in $seen; do
    n=\${k%%:*}
    case " $now " in *" $n:"*) ;; *) r=\${k#*:}; echo "KOVA-DISK-GONE dev=$n serial=\${r%%:*}" > /dev/ttyS0 ;; esac
  done
  seen="$now"
  usleep ${Math.round((o.intervalMs ?? 100) * 1000)}
done
) </dev/null >/dev/null 2>&1 &
`;
}

export interface ProbedDisk {
  dev: string;
  serial: string;
  sectors: number;
  head: string;
}

const DISK = /KOVA-DISK dev=(\S+) serial=(\S*) size=(\d+) head=(\S*)/g;
const GONE = /KOVA-DISK-GONE dev=(\S+) serial=(\S*)/g;

/** Every KOVA-DISK line of a console log, in order. */
export function probedDisks(log: string): ProbedDisk[] {
  return [...log.matchAll(DISK)].map((m) => ({ dev: m[1]!, serial: m[2]!, sectors: Number(m[3]), head: m[4]! }));
}

/** The serials the guest reported gone, in order. */
export function probedGone(log: string): string[] {
  return [...log.matchAll(GONE)].map((m) => m[2]!);
}
