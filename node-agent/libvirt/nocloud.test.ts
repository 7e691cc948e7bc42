import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import YAML from 'yaml';
import {
  buildNoCloudSeed,
  InvalidSeed,
  MAX_USER_DATA_BYTES,
  networkConfigForNics,
  renderMetaData,
  renderNetworkConfig,
  renderSeedFiles,
  renderUserData,
} from './nocloud.js';

const run = promisify(execFile);
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJv0Yx7s1y3m6uQh0Qf0vGz2n9m0sQe0cH7X3Zk1b2c3 alice@laptop';
const KEY2 = 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 bob';

/** Parts of a multipart/mixed message, as cloud-init's email parser would see them. */
function mimeParts(msg: string): { headers: string; body: string }[] {
  const boundary = /boundary="([^"]+)"/.exec(msg)?.[1];
  assert.ok(boundary, 'multipart boundary');
  const chunks = msg.split(`\n--${boundary}`);
  assert.ok(chunks.at(-1)!.startsWith('--'), 'closing delimiter');
  return chunks.slice(1, -1).map((c) => {
    const [headers, ...body] = c.replace(/^\n/, '').split('\n\n');
    return { headers, body: body.join('\n\n') };
  });
}

describe('renderMetaData', () => {
  it('writes instance-id and local-hostname', () => {
    assert.deepEqual(YAML.parse(renderMetaData('5f0e1d2c-3b4a', 'web-1')), { 'instance-id': '5f0e1d2c-3b4a', 'local-hostname': 'web-1' });
  });
  it('keeps a YAML-special instance-id a string', () => {
    assert.equal(YAML.parse(renderMetaData('123: {x}', 'a'))['instance-id'], '123: {x}');
  });
  it('rejects bad hostnames and control characters', () => {
    for (const h of ['', 'a b', 'a_b', '-a', 'a'.repeat(64), 'x\nlocal-hostname: evil']) assert.throws(() => renderMetaData('i', h), InvalidSeed);
    assert.throws(() => renderMetaData('i\ninstance-id: evil', 'a'), InvalidSeed);
  });
});

describe('renderUserData', () => {
  it('passes user-data through untouched without keys', () => {
    const script = '#!/bin/sh\necho hi\n';
    assert.equal(renderUserData(script), script);
    assert.equal(renderUserData(undefined), '');
  });

  it('makes a cloud-config holding only the keys when there is no user-data', () => {
    const out = renderUserData(undefined, [KEY]);
    assert.match(out, /^#cloud-config\n/);
    assert.deepEqual(YAML.parse(out), { ssh_authorized_keys: [KEY] });
  });

  it('adds keys to a #cloud-config, keeping its content and comments', () => {
    const ud = '#cloud-config\n# keep me\npackages: [nginx]\nssh_authorized_keys:\n  - ' + KEY2 + '\nruncmd:\n  - echo hi\n';
    const out = renderUserData(ud, [KEY, KEY2]);
    assert.match(out, /^#cloud-config\n# keep me\n/);
    assert.deepEqual(YAML.parse(out), { packages: ['nginx'], ssh_authorized_keys: [KEY2, KEY], runcmd: ['echo hi'] });
  });

  it('handles a #cloud-config with nothing after the header', () => {
    assert.deepEqual(YAML.parse(renderUserData('#cloud-config\n', [KEY])), { ssh_authorized_keys: [KEY] });
  });

  it('keeps a script as its own part of a multipart message', () => {
    const script = '#!/bin/sh\necho "--not-a-boundary"\n\necho done\n';
    const out = renderUserData(script, [KEY]);
    assert.match(out, /^Content-Type: multipart\/mixed; boundary="==kova-[0-9a-f]+=="\nMIME-Version: 1.0\n/);
    const parts = mimeParts(out);
    assert.equal(parts.length, 2);
    assert.match(parts[0].headers, /^Content-Type: text\/cloud-config;/);
    assert.deepEqual(YAML.parse(parts[0].body), { ssh_authorized_keys: [KEY] });
    assert.match(parts[1].headers, /^Content-Type: text\/x-shellscript;/);
    assert.equal(parts[1].body + '\n', script);
  });

  it('types other user-data by its first line', () => {
    assert.match(mimeParts(renderUserData('#include\nhttp://x/y\n', [KEY]))[1].headers, /text\/x-include-url/);
    assert.match(mimeParts(renderUserData('#cloud-boothook\necho\n', [KEY]))[1].headers, /text\/cloud-boothook/);
    assert.match(mimeParts(renderUserData('hello\n', [KEY]))[1].headers, /text\/plain/);
  });

  it('nests a MIME message as a part with its own headers', () => {
    const inner = 'Content-Type: multipart/mixed; boundary="inner"\nMIME-Version: 1.0\n\n--inner\nContent-Type: text/x-shellscript\n\n#!/bin/sh\n--inner--\n';
    const out = renderUserData(inner, [KEY]);
    const outer = /boundary="([^"]+)"/.exec(out)![1];
    assert.notEqual(outer, 'inner');
    assert.ok(out.includes(`--${outer}\n${inner}`));
  });

  it('rejects invalid YAML, a non-list ssh_authorized_keys and non-mapping documents', () => {
    assert.throws(() => renderUserData('#cloud-config\nfoo: [unclosed\n', [KEY]), /not valid YAML/);
    assert.throws(() => renderUserData('#cloud-config\nssh_authorized_keys: ' + KEY + '\n', [KEY]), /must be a list/);
    assert.throws(() => renderUserData('#cloud-config\n- a\n', [KEY]), /mapping/);
  });

  it('rejects keys that would inject YAML or are not SSH keys', () => {
    for (const k of [`${KEY}\nruncmd: [reboot]`, 'not a key', 'ssh-ed25519 AAAA\r', '']) {
      assert.throws(() => renderUserData(undefined, [k]), InvalidSeed, JSON.stringify(k));
    }
  });

  it('rejects oversized user-data', () => {
    assert.throws(() => renderUserData('#!/bin/sh\n' + 'x'.repeat(MAX_USER_DATA_BYTES)), /larger than/);
  });
});

describe('network-config', () => {
  it('renders static and DHCP NICs matched by MAC', () => {
    const cfg = networkConfigForNics([
      { mac: '52:54:00:00:00:01', address: '10.20.0.10/24', gateway: '10.20.0.1', dns: ['10.20.0.1'] },
      { mac: '52:54:00:00:00:02' },
    ]);
    assert.deepEqual(YAML.parse(renderNetworkConfig(cfg)), {
      version: 2,
      ethernets: {
        eth0: {
          match: { macaddress: '52:54:00:00:00:01' },
          'set-name': 'eth0',
          addresses: ['10.20.0.10/24'],
          routes: [{ to: 'default', via: '10.20.0.1' }],
          nameservers: { addresses: ['10.20.0.1'] },
        },
        eth1: { match: { macaddress: '52:54:00:00:00:02' }, 'set-name': 'eth1', dhcp4: true },
      },
    });
  });
  it('rejects invalid addresses, gateways and MACs', () => {
    assert.throws(() => renderNetworkConfig(networkConfigForNics([{ mac: '52:54:00:00:00:01', address: '10.0.0.300/24' }])), /address/);
    assert.throws(() => renderNetworkConfig(networkConfigForNics([{ mac: '52:54:00:00:00:01', address: '10.0.0.3' }])), /address/);
    assert.throws(() => renderNetworkConfig(networkConfigForNics([{ mac: '52:54:00:00:00:01', address: '10.0.0.3/24', gateway: 'x\ny' }])), /gateway/);
    assert.throws(() => renderNetworkConfig(networkConfigForNics([{ mac: '52:54:00:00:00:0G' }])), /MAC/);
  });
});

describe('buildNoCloudSeed', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kova-seed-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes an ISO labelled cidata whose files read back verbatim', async () => {
    const spec = {
      instanceId: 'uid-1234',
      hostname: 'web-1',
      userData: '#!/bin/sh\necho "héllo <&>"\n',
      sshAuthorizedKeys: [KEY],
      networkConfig: networkConfigForNics([{ mac: '52:54:00:00:00:01', address: '10.20.0.10/24', gateway: '10.20.0.1' }]),
    };
    const iso = join(dir, 'seed.iso');
    await buildNoCloudSeed(iso, spec);
    const info = (await run('isoinfo', ['-d', '-i', iso])).stdout;
    assert.match(info, /^Volume id: cidata$/m);
    assert.match(info, /Rock Ridge signatures version/);
    const listing = (await run('isoinfo', ['-R', '-f', '-i', iso])).stdout.split('\n').filter(Boolean).sort();
    assert.deepEqual(listing, ['/meta-data', '/network-config', '/user-data']);
    const expected = renderSeedFiles(spec);
    for (const name of ['meta-data', 'user-data', 'network-config'] as const) {
      const got = (await run('isoinfo', ['-R', '-i', iso, '-x', `/${name}`], { encoding: 'buffer' })).stdout.toString('utf8');
      assert.equal(got, expected[name], name);
    }
  });

  it('omits network-config when there is none, and replaces an existing ISO', async () => {
    const iso = join(dir, 'seed2.iso');
    await buildNoCloudSeed(iso, { instanceId: 'a', hostname: 'a', networkConfig: networkConfigForNics([{ mac: '52:54:00:00:00:01' }]) });
    await buildNoCloudSeed(iso, { instanceId: 'b', hostname: 'b' });
    const listing = (await run('isoinfo', ['-R', '-f', '-i', iso])).stdout.split('\n').filter(Boolean).sort();
    assert.deepEqual(listing, ['/meta-data', '/user-data']);
    assert.match((await run('isoinfo', ['-R', '-i', iso, '-x', '/meta-data'])).stdout, /instance-id: b/);
  });

  it('fails before writing anything for an invalid spec', async () => {
    const iso = join(dir, 'bad.iso');
    await assert.rejects(buildNoCloudSeed(iso, { instanceId: 'x', hostname: 'bad host' }), InvalidSeed);
    await assert.rejects(run('test', ['-e', iso]));
  });
});
