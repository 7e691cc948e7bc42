// Volumes on real libvirt, as a user drives them with kubectl against `kova up`: a guest writes a
// known pattern to a hot-plugged volume; the volume is extended online and the guest sees the
// new size; a snapshot is taken while the guest writes; the volume is detached (the guest lets
// go first) and attached to a second instance, which reads the pattern; the snapshot restored to
// a new volume holds it too; an instance boots from a volume made from an image, and another one
// from an Image made from a snapshot of that running boot volume. Needs root, libvirtd and what
// guest/build.ts needs.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import YAML from 'yaml';
import { buildTestGuest, type TestGuest } from '../guest/build.js';
import { eventually, startKova, type Kova } from './harness.js';
import { waitConsole } from './console.js';
import { diskProbeUserData, probedDisks, probedGone } from './guest/disk-probe.js';

const GUEST_DIR = process.env.KOVA_TEST_GUEST_DIR ?? '/var/tmp/kova-test-guest';
const MiB = 1024 * 1024;

describe('slow: volumes on libvirt: hot plug, extend, snapshot, restore, boot from volume', () => {
  const id = randomBytes(3).toString('hex');
  const ns = `vol-${id}`;
  const flavor = `vol-${id}`;
  let guest: TestGuest;
  let kova: Kova;

  before(async () => {
    guest = await buildTestGuest({ outDir: GUEST_DIR });
    kova = await startKova([]); // default driver: libvirt
    const docs = [
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } },
      { apiVersion: 'kova.dev/v1alpha1', kind: 'Flavor', metadata: { name: flavor }, spec: { vcpus: 1, memory: '192Mi', disk: '1Gi' } },
      { apiVersion: 'kova.dev/v1alpha1', kind: 'Image', metadata: { name: 'guest', namespace: ns }, spec: { source: { file: { path: guest.imagePath } }, sha256: guest.sha256 } },
    ];
    await kova.k(['apply', '-f', '-'], { input: docs.map((d) => YAML.stringify(d)).join('---\n') });
  });
  after(async () => {
    // Deleting the namespace removes the instances (their domains) and then the volumes (their files).
    if (kova) await kova.k(['delete', 'namespace', ns, '--timeout=120s']).catch(() => undefined);
    await kova?.stop();
  });

  const apply = (obj: Record<string, unknown>) => kova.k(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'kova.dev/v1alpha1', ...obj }) });
  const getJson = async (kind: string, name: string) => JSON.parse(await kova.k(['get', kind, name, '-n', ns, '-o', 'json']));
  const patch = (kind: string, name: string, p: unknown) => kova.k(['patch', kind, name, '-n', ns, '--type=merge', '-p', JSON.stringify(p)]);
  const waitFor = (what: string, cond: string, timeout = '120s') => kova.k(['wait', what, '-n', ns, `--for=${cond}`, `--timeout=${timeout}`]);
  const instance = (name: string, spec: Record<string, unknown>) => apply({ kind: 'Instance', metadata: { name, namespace: ns }, spec: { flavor, ...spec } });
  const booted = (name: string) => waitConsole(kova, name, ns, (l) => l.includes('KOVA-GUEST-BOOTED'), 120_000, 'the boot marker');

  it('walks a volume through its life with real guests', async () => {
    await waitFor('image/guest', 'jsonpath={.status.phase}=Ready', '60s');

    // A blank volume of the default VolumeType (local) waits for its first consumer.
    await apply({ kind: 'Volume', metadata: { name: 'data', namespace: ns }, spec: { size: '64Mi' } });
    const pending = await eventually(async () => {
      const v = await getJson('volume', 'data');
      return v.status?.conditions?.some((c: { reason?: string }) => c.reason === 'WaitingForFirstConsumer') ? v : undefined;
    }, 30_000, 'data waits for its first consumer');
    assert.equal(pending.spec.volumeType, 'local', 'the default VolumeType is filled in');
    assert.equal(pending.status.phase, 'Pending');

    // vm-a runs; the volume is hot-plugged into it and the guest writes the pattern.
    await instance('vm-a', { image: 'guest', userData: diskProbeUserData({ write: true, churn: true }) });
    await waitFor('instance/vm-a', 'condition=Ready');
    await booted('vm-a');
    await patch('instance', 'vm-a', { spec: { volumes: [{ volume: 'data' }] } });
    await waitFor('volume/data', 'jsonpath={.status.phase}=InUse');
    const data = await getJson('volume', 'data');
    const serial = data.metadata.uid.slice(0, 20);
    assert.equal(data.status.attachments[0].serial, serial);
    assert.equal(data.status.attachments[0].instance, 'vm-a');
    const pattern = `KOVA-PATTERN-${serial}`;
    const seen = await waitConsole(kova, 'vm-a', ns, (l) => probedDisks(l).find((d) => d.serial === serial && d.head === pattern), 60_000, 'the guest writes the pattern to the hot-plugged disk');
    assert.equal(seen.sectors, (64 * MiB) / 512);

    // Extended online: the running guest sees the new size.
    await patch('volume', 'data', { spec: { size: '96Mi' } });
    await waitConsole(kova, 'vm-a', ns, (l) => probedDisks(l).some((d) => d.serial === serial && d.sectors === (96 * MiB) / 512), 60_000, 'the guest sees 96Mi');
    await waitFor('volume/data', 'jsonpath={.status.capacity}=96Mi');

    // A snapshot while the guest keeps writing (crash-consistent, the guest is not paused).
    await apply({ kind: 'VolumeSnapshot', metadata: { name: 'snap', namespace: ns }, spec: { source: { volume: 'data' } } });
    await waitFor('volumesnapshot/snap', 'jsonpath={.status.readyToUse}=true');
    const snap = await getJson('volumesnapshot', 'snap');
    assert.equal(snap.status.restoreSize, '96Mi');
    assert.equal((await getJson('instance', 'vm-a')).status.phase, 'Running');

    // Detached: the guest lets go of the disk, then the volume is Available again.
    await patch('instance', 'vm-a', { spec: { volumes: null } });
    await waitConsole(kova, 'vm-a', ns, (l) => probedGone(l).includes(serial), 60_000, 'the guest loses the disk');
    await waitFor('volume/data', 'jsonpath={.status.phase}=Available');

    // A second instance gets the volume from the start and reads the same pattern.
    await instance('vm-b', { image: 'guest', userData: diskProbeUserData(), volumes: [{ volume: 'data' }] });
    await waitFor('instance/vm-b', 'condition=Ready');
    await waitConsole(kova, 'vm-b', ns, (l) => probedDisks(l).some((d) => d.serial === serial && d.head === pattern), 120_000, 'vm-b reads the pattern');

    // The snapshot restored into a new, larger volume holds the pattern, hot-plugged into vm-b.
    await apply({ kind: 'Volume', metadata: { name: 'restored', namespace: ns }, spec: { size: '128Mi', source: { snapshot: 'snap' } } });
    await patch('instance', 'vm-b', { spec: { volumes: [{ volume: 'data' }, { volume: 'restored' }] } });
    await waitFor('volume/restored', 'jsonpath={.status.phase}=InUse');
    const restoredSerial = (await getJson('volume', 'restored')).metadata.uid.slice(0, 20);
    const restored = await waitConsole(kova, 'vm-b', ns, (l) => probedDisks(l).find((d) => d.serial === restoredSerial), 60_000, 'vm-b sees the restored volume');
    assert.equal(restored.head, pattern, 'the restored volume holds what the snapshot copied');
    assert.equal(restored.sectors, (128 * MiB) / 512);

    // Boot from a volume made from the image; snapshot it while it runs; publish that snapshot as
    // an Image; boot a third instance from it.
    await apply({ kind: 'Volume', metadata: { name: 'boot', namespace: ns }, spec: { size: '256Mi', source: { image: 'guest' } } });
    await instance('vm-c', { volumes: [{ volume: 'boot', bootOrder: 1 }] });
    await waitFor('instance/vm-c', 'condition=Ready', '180s');
    await booted('vm-c');
    await apply({ kind: 'VolumeSnapshot', metadata: { name: 'boot-snap', namespace: ns }, spec: { source: { volume: 'boot' } } });
    await waitFor('volumesnapshot/boot-snap', 'jsonpath={.status.readyToUse}=true');
    await apply({ kind: 'Image', metadata: { name: 'from-snap', namespace: ns }, spec: { source: { snapshot: 'boot-snap' } } });
    await waitFor('image/from-snap', 'jsonpath={.status.phase}=Ready');
    const img = await getJson('image', 'from-snap');
    assert.match(img.status.sha256, /^[0-9a-f]{64}$/);
    await instance('vm-d', { image: 'from-snap' });
    await waitFor('instance/vm-d', 'condition=Ready', '180s');
    await booted('vm-d');

    // A volume in use cannot be removed: its delete waits, and says why.
    await kova.k(['delete', 'volume', 'boot', '-n', ns, '--wait=false']);
    const deleting = await eventually(async () => {
      const v = await getJson('volume', 'boot');
      return v.status?.phase === 'Deleting' ? v : undefined;
    }, 30_000, 'boot is Deleting');
    assert.match(deleting.status.conditions.find((c: { type: string }) => c.type === 'Ready').message, /vm-c/);
    assert.match(await kova.k(['describe', 'volume', 'boot', '-n', ns]), /vm-c/);
  });
});
