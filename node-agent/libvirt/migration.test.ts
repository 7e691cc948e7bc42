import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DriverError, InvalidSpec } from '../driver.js';
import {
  decodeMigrateData, destinationXml, encodeMigrateData, JOB_OPERATION_MIGRATION_OUT, migrateArgs, migrateUri, parseJobStats, progressOf, ProgressWatch, resultOf, shouldSwitchToPostCopy,
} from './migration.js';
import { parseDomainDisks } from './virsh.js';

// Golden files live in the source tree; UPDATE_GOLDEN=1 rewrites them from the current output.
const TESTDATA = fileURLToPath(new URL('../../../node-agent/libvirt/testdata/', import.meta.url));
const read = (name: string) => readFileSync(TESTDATA + name, 'utf8');
function golden(name: string, actual: string): void {
  if (process.env.UPDATE_GOLDEN === '1') writeFileSync(TESTDATA + name, actual);
  assert.equal(actual, read(name), `${name} differs from the golden file (UPDATE_GOLDEN=1 to accept)`);
}

const SRC = '/var/lib/kova/hosts/a';
const DST = '/var/lib/kova/hosts/b';
const rewrite = {
  dirs: [[`${SRC}/domains/kova-mig.a`, `${DST}/domains/kova-mig.a`], [`${SRC}/volumes`, `${DST}/volumes`]] as Array<[string, string]>,
  kernel: `${DST}/images/kova-system/tiny.vmlinuz`,
  initrd: `${DST}/images/kova-system/tiny.initrd`,
};

describe('destination XML', () => {
  // migratable-source.xml: `virsh dumpxml --migratable` of a running test guest (libvirt 9.0),
  // with a kernel, a local volume restored from a snapshot chain and a volume on a shared path added.
  const source = read('migratable-source.xml');
  const dest = destinationXml(source, rewrite);

  it('matches the golden file', () => golden('migratable-dest.xml', dest));

  it('moves the domain directory and local volumes, keeps the UUID and shared paths', () => {
    assert.equal(/<uuid>([^<]*)<\/uuid>/.exec(dest)?.[1], /<uuid>([^<]*)<\/uuid>/.exec(source)?.[1]);
    const disks = parseDomainDisks(dest);
    assert.deepEqual(disks.map((d) => d.source), [
      `${DST}/domains/kova-mig.a/root.qcow2`,
      `${DST}/volumes/6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e.qcow2`,
      "/srv/nfs/o'brien & co/volumes/7f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e.qcow2",
      `${DST}/domains/kova-mig.a/seed.iso`,
    ]);
    assert.deepEqual(disks.map((d) => d.backing), [[], [], [], []], 'backing chains are the target\'s to find');
    assert.match(dest, new RegExp(`<log file='${DST}/domains/kova-mig.a/console.log' append='off'/>`));
    assert.match(dest, new RegExp(`<kernel>${rewrite.kernel}</kernel>`));
    assert.match(dest, new RegExp(`<initrd>${rewrite.initrd}</initrd>`));
    assert.doesNotMatch(dest.replace(/<cmdline>.*<\/cmdline>/, ''), /\/hosts\/a\//, 'no source path is left');
    assert.match(dest, /<cmdline>console=ttyS0 root=\/var\/lib\/kova\/hosts\/a\/domains\/kova-mig.a<\/cmdline>/, 'the command line is not a path');
    assert.match(dest, /<backingStore\/>/, 'a disk without backing keeps saying so');
    assert.equal(dest.match(/<\/?disk\b/g)?.length, source.match(/<\/?disk\b/g)?.length);
  });

  it('escapes what it writes and leaves prefixes that only look alike', () => {
    const xml = `<domain>\n  <disk type='file'>\n    <source file="/a/d/x&amp;y"/>\n  </disk>\n  <disk>\n    <source file='/a/dd/z'/>\n  </disk>\n</domain>\n`;
    const out = destinationXml(xml, { dirs: [['/a/d', "/b/it's <here> & there"]] });
    assert.equal(out, `<domain>\n  <disk type='file'>\n    <source file='/b/it&apos;s &lt;here&gt; &amp; there/x&amp;y'/>\n  </disk>\n  <disk>\n    <source file='/a/dd/z'/>\n  </disk>\n</domain>\n`);
  });
});

describe('migrate flags', () => {
  const base = { id: 'kova-demo.web-1', destUri: 'qemu+tcp://host-2/system', persistentXmlFile: '/tmp/p.xml', xmlFile: '/tmp/d.xml' };

  it('block copy: live, peer to peer, persistent, the local disks only, incremental', () => {
    assert.deepEqual(migrateArgs({ ...base, address: '10.0.0.2', copyStorage: 'inc', migrateDisks: ['vda', 'vdb'], autoConverge: true }), [
      'migrate', '--live', '--p2p', '--persistent', '--undefinesource', '--migrateuri', 'tcp://10.0.0.2', '--copy-storage-inc', '--migrate-disks', 'vda,vdb',
      '--auto-converge', '--xml', '/tmp/d.xml', '--persistent-xml', '/tmp/p.xml', '--domain', 'kova-demo.web-1', '--desturi', 'qemu+tcp://host-2/system',
    ]);
  });

  it('shared storage: nothing copied, --unsafe only when asked, post-copy and bandwidth in MiB/s', () => {
    assert.deepEqual(migrateArgs({ ...base, unsafe: true, postCopy: true, bandwidthBytesPerSec: 5 * 1024 * 1024 }), [
      'migrate', '--live', '--p2p', '--persistent', '--undefinesource', '--unsafe', '--postcopy', '--bandwidth', '5',
      '--xml', '/tmp/d.xml', '--persistent-xml', '/tmp/p.xml', '--domain', 'kova-demo.web-1', '--desturi', 'qemu+tcp://host-2/system',
    ]);
    assert.ok(migrateArgs({ ...base, bandwidthBytesPerSec: 1000 }).join(' ').includes('--bandwidth 1'), 'a small limit never becomes 0 (unlimited)');
    assert.ok(migrateArgs({ ...base, bandwidthBytesPerSec: 2.6 * 1024 * 1024 }).join(' ').includes('--bandwidth 3'));
    assert.throws(() => migrateArgs({ ...base, bandwidthBytesPerSec: 0 }), InvalidSpec);
  });

  it('cold: paused on the target, or the definition alone (offline)', () => {
    assert.deepEqual(migrateArgs({ ...base, copyStorage: 'all', migrateDisks: ['vda'], suspend: true }).slice(0, 9), [
      'migrate', '--live', '--p2p', '--persistent', '--undefinesource', '--copy-storage-all', '--migrate-disks', 'vda', '--suspend',
    ]);
    assert.deepEqual(migrateArgs({ ...base, offline: true, copyStorage: 'inc', autoConverge: true, address: 'h' }), [
      'migrate', '--offline', '--p2p', '--persistent', '--undefinesource', '--persistent-xml', '/tmp/p.xml', '--domain', 'kova-demo.web-1', '--desturi', 'qemu+tcp://host-2/system',
    ]);
  });

  it('refuses a domain name virsh could read as an option, brackets IPv6', () => {
    assert.throws(() => migrateArgs({ ...base, id: '--all' }), DriverError);
    assert.equal(migrateUri('fd00::2'), 'tcp://[fd00::2]');
    assert.equal(migrateUri('[fd00::2]'), 'tcp://[fd00::2]');
    assert.equal(migrateUri('host-2'), 'tcp://host-2');
  });
});

describe('migrate data', () => {
  const good = { uri: 'qemu+tcp://h/system', address: '10.0.0.2', domainDir: '/d/x', volumesDir: '/d/volumes', kernel: '/i/k' };
  it('round-trips and validates', () => {
    assert.deepEqual(decodeMigrateData(encodeMigrateData(good)), good);
    assert.throws(() => decodeMigrateData({ ...good, domainDir: '/d/../etc' }), DriverError);
    assert.throws(() => decodeMigrateData({ ...good, volumesDir: 'rel' }), DriverError);
    assert.throws(() => decodeMigrateData({ ...good, uri: '--help' }), DriverError);
    assert.throws(() => decodeMigrateData({ ...good, address: 'a b' }), DriverError);
    const { domainDir: _d, ...missing } = good;
    assert.throws(() => decodeMigrateData(missing), DriverError);
  });
});

describe('job statistics (captured from libvirt 9.0)', () => {
  it('no job', () => {
    const s = parseJobStats(read('domjobinfo-none.txt'));
    assert.equal(s.type, 'none');
    assert.equal(s.values.size, 0);
  });

  it('a migration setting up: elapsed time, no totals yet', () => {
    const s = parseJobStats(read('domjobinfo-setup.txt'));
    assert.equal(s.type, 'unbounded');
    assert.equal(s.values.get('operation'), JOB_OPERATION_MIGRATION_OUT);
    assert.deepEqual(progressOf(s), { elapsedMs: 404 });
  });

  it('a migration at switch-over', () => {
    const s = parseJobStats(read('domjobinfo-switchover.txt'));
    assert.deepEqual(progressOf(s), { elapsedMs: 752, totalBytes: 201859072, processedBytes: 101509368, remainingBytes: 0 });
    assert.equal(s.values.get('memory_iteration'), 3);
  });

  it('a running migration mid-way', () => {
    const s = parseJobStats(read('domjobinfo-running.txt'));
    const p = progressOf(s);
    assert.ok(p.totalBytes! > 0 && p.remainingBytes! > 0 && p.processedBytes! > 0, JSON.stringify(p));
  });

  it('the job-completed event: time, downtime, data', () => {
    const s = parseJobStats(read('event-job-completed.txt'));
    assert.deepEqual(resultOf(s, 0), { elapsedMs: 811, downtimeMs: 181, processedBytes: 101509368, totalBytes: 201859072 });
    assert.deepEqual(resultOf(parseJobStats(''), 42), { elapsedMs: 42 });
  });
});

describe('progress and post-copy', () => {
  // Nova's should_switch_to_postcopy, case by case.
  const table: Array<[iteration: number, current: number, previous: number, inPostCopy: boolean, want: boolean]> = [
    [1, 1000, 2000, false, false], // the first pass is never judged
    [2, 1950, 2000, false, true], // 2.5 % in an iteration
    [2, 1810, 2000, false, false], // 9.5 % rounds to 10 (Python and JS alike)
    [2, 1800, 2000, false, false], // 10 %
    [3, 2100, 2000, false, true], // grew
    [2, 100, 2000, true, false], // already in post-copy
    [2, 100, 0, false, false], // no previous reading
  ];
  for (const [it_, cur, prev, pc, want] of table) {
    it(`iteration ${it_}, ${prev} → ${cur}${pc ? ', post-copy' : ''}: ${want ? 'switch' : 'stay'}`, () => {
      assert.equal(shouldSwitchToPostCopy(it_, cur, prev, pc), want);
    });
  }

  const stats = (v: Record<string, number>) => ({ type: 'unbounded' as const, values: new Map(Object.entries(v)) });

  it('counts progress by the lowest remaining, and processed bytes before totals exist', () => {
    const w = new ProgressWatch(0);
    w.observe(stats({ time_elapsed: 100 }), 100, false, false);
    assert.equal(w.stalledFor(1000), 1000, 'nothing processed yet');
    w.observe(stats({ data_processed: 10 }), 1000, false, false);
    assert.equal(w.stalledFor(1500), 500);
    w.observe(stats({ data_total: 100, data_remaining: 50, data_processed: 50 }), 2000, false, false);
    w.observe(stats({ data_total: 100, data_remaining: 60, data_processed: 90 }), 3000, false, false);
    assert.equal(w.stalledFor(4000), 2000, 'remaining grew: no progress since 2000');
    w.observe(stats({ data_total: 100, data_remaining: 40, data_processed: 120 }), 4500, false, false);
    assert.equal(w.stalledFor(5000), 500);
  });

  it('asks for post-copy on a new iteration that barely shrank the rest, once allowed', () => {
    const w = new ProgressWatch(0);
    assert.equal(w.observe(stats({ data_total: 100, data_remaining: 80, memory_iteration: 1 }), 1, true, false), false);
    assert.equal(w.observe(stats({ data_total: 100, data_remaining: 78, memory_iteration: 1 }), 2, true, false), false, 'same iteration');
    assert.equal(w.observe(stats({ data_total: 100, data_remaining: 76, memory_iteration: 2 }), 3, true, false), true);
    const n = new ProgressWatch(0);
    n.observe(stats({ data_total: 100, data_remaining: 80, memory_iteration: 1 }), 1, false, false);
    assert.equal(n.observe(stats({ data_total: 100, data_remaining: 79, memory_iteration: 2 }), 2, false, false), false, 'not allowed');
  });
});
