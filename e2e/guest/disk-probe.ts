// User-data for the test guest that reports its volumes on the serial console, so tests and
// benchmarks see what the guest sees: every 0.1 s (intervalMs) it lists the virtio disks that
// have a serial (volumes; the root overlay has none), and prints a line when one appears or
// changes (size, first bytes) and when one goes:
//   KOVA-DISK dev=vdb serial=<serial> size=<512-byte sectors> head=<first bytes, [A-Za-z0-9-]>
//   KOVA-DISK-GONE dev=vdb serial=<serial>
// With `write`, a disk whose first sector is all zeros gets `KOVA-PATTERN-<serial>` written
// there (the known pattern, synced, once per serial) before it is reported; with `churn`, the
// guest keeps writing random data past the first MiB of every disk (writes in flight while a
// snapshot is taken).

export interface DiskProbeOptions {
  write?: boolean;
  churn?: boolean;
  /** How often the guest looks (default 100 ms). */
  intervalMs?: number;
}

/** What `write` puts at the start of a blank disk: `KOVA-PATTERN-<serial>`. */
export function probePattern(serial: string): string {
  return `KOVA-PATTERN-${serial}`;
}

export function diskProbeUserData(o: DiskProbeOptions = {}): string {
  return `#!/bin/sh
(
seen=""
while true; do
  now=""
  for d in /sys/block/vd*; do
    n=\${d##*/}
    [ -b /dev/$n ] || continue
    s=$(cat $d/serial 2>/dev/null)
    [ -n "$s" ] || continue
    z=$(cat $d/size 2>/dev/null)
    if [ ${o.write ? 1 : 0} = 1 ] && [ ! -e /run/kp.$s ] && [ -z "$(dd if=/dev/$n bs=512 count=1 2>/dev/null | tr -d '\\000')" ]; then
      printf '${probePattern('%s')}' "$s" | dd of=/dev/$n conv=notrunc,fsync 2>/dev/null && touch /run/kp.$s
    fi
    h=$(dd if=/dev/$n bs=64 count=1 2>/dev/null | tr -cd 'A-Za-z0-9-')
    if [ ${o.churn ? 1 : 0} = 1 ]; then
      dd if=/dev/urandom of=/dev/$n bs=64k seek=16 count=8 conv=notrunc 2>/dev/null
    fi
    k="$s:$n:$z:$h"
    now="$now $k"
    case " $seen " in *" $k "*) ;; *) echo "KOVA-DISK dev=$n serial=$s size=$z head=$h" > /dev/ttyS0 ;; esac
  done
  for k in $seen; do
    s=\${k%%:*}
    case " $now " in *" $s:"*) ;; *) r=\${k#*:}; echo "KOVA-DISK-GONE dev=\${r%%:*} serial=$s" > /dev/ttyS0 ;; esac
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
