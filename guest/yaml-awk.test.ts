// The test guest reads its seed with files/yaml.awk (busybox awk): check it against the yaml
// library on documents kova renders and on hand-written cloud-config forms.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import YAML from 'yaml';
import { networkConfigForNics, renderMetaData, renderNetworkConfig, renderUserData } from '../node-agent/libvirt/nocloud.js';
import { GUEST_FILES_DIR } from './build.js';


/** path → value, flattened the way yaml.awk names paths. */
function flattenJs(v: unknown, path = '', out = new Map<string, string>()): Map<string, string> {
  if (Array.isArray(v)) v.forEach((x, i) => flattenJs(x, `${path}[${i}]`, out));
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) flattenJs(x, path === '' ? k : `${path}.${k}`, out);
  else out.set(path, String(v));
  return out;
}

/** Runs yaml.awk with busybox (as in the guest) and decodes values as the guest's printf %b does. */
async function flattenAwk(doc: string): Promise<Map<string, string>> {
  const child = execFile('busybox', ['awk', '-f', join(GUEST_FILES_DIR, 'yaml.awk')]);
  const done = new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`awk exited ${code}`))));
  });
  child.stdin!.end(doc);
  const map = new Map<string, string>();
  for (const line of (await done).split('\n').filter(Boolean)) {
    const tab = line.indexOf('\t');
    map.set(line.slice(0, tab), line.slice(tab + 1).replace(/\\(\\|n)/g, (_, c: string) => (c === 'n' ? '\n' : '\\')));
  }
  return map;
}

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJv0Yx7s1y3m6uQh0Qf0vGz2n9m0sQe0cH7X3Zk1b2c3 alice@laptop';

const docs: [string, string][] = [
  ['meta-data', renderMetaData('5f0e1d2c-3b4a-4958', 'web-1')],
  ['meta-data with a quoted id', renderMetaData("it's: #1", 'a')],
  [
    'network-config',
    renderNetworkConfig(
      networkConfigForNics([
        { mac: '52:54:00:00:00:01', address: '10.20.0.10/24', gateway: '10.20.0.1', dns: ['10.20.0.1', '10.20.0.2'], mtu: 1450 },
        { mac: '52:54:00:00:00:02' },
      ]),
    ),
  ],
  ['cloud-config with keys merged', renderUserData('#cloud-config\nruncmd:\n  - echo "a: b" > /tmp/x\n  - [sh, -c, "echo it\'s"]\n', [KEY])],
  ['keys only', renderUserData(undefined, [KEY])],
  [
    'hand-written cloud-config',
    [
      '#cloud-config',
      'runcmd:',
      '- echo one',
      "- 'single ''quoted'''",
      '- "double \\"quoted\\" \\\\ back"',
      '- |',
      '  line 1',
      '    indented \\n literal',
      '- - ls',
      '  - -l',
      'write_files:',
      '  - path: /etc/x',
      '    content: |-',
      '      a',
      '',
      '      b',
      '    permissions: "0644"',
      'users: []',
      'final: plain # comment',
      '',
    ].join('\n'),
  ],
];

describe('guest yaml.awk', () => {
  for (const [name, doc] of docs) {
    it(`flattens ${name} like the yaml library`, async () => {
      const expected = flattenJs(YAML.parse(doc));
      const actual = await flattenAwk(doc);
      // An empty flow sequence has no scalar to emit in either flattening.
      assert.deepEqual(Object.fromEntries(actual), Object.fromEntries(expected));
    });
  }
});
