// The components' kubeconfigs: a certificate per identity from the kova CA (CN = user, O =
// groups), mode 600, kept across starts, moved to a new address, reissued under a new CA.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { ensurePki } from '../apiserver/pki.js';
import { ensureComponentKubeconfigs, nodeKubeconfig } from './component-identities.js';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function read(path: string) {
  const doc = YAML.parse(await readFile(path, 'utf8'));
  const pem = Buffer.from(doc.users[0].user['client-certificate-data'], 'base64').toString();
  return { server: doc.clusters[0].cluster.server as string, pem, cert: new X509Certificate(pem) };
}

describe('component kubeconfigs', () => {
  it('issues one identity per component, keeps it, and follows the address and the CA', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kova-ids-'));
    dirs.push(dir);
    await ensurePki(join(dir, 'pki'), []);
    const ids = await ensureComponentKubeconfigs(dir, join(dir, 'pki'), 'https://127.0.0.1:6443', ['sim-0', 'sim-1']);
    assert.equal((await stat(ids.nodeDir)).mode & 0o777, 0o700);
    const ctrl = await read(ids.controllers);
    assert.equal(ctrl.cert.subject, 'CN=system:kova:controller-manager');
    const n1 = await read(nodeKubeconfig(ids.nodeDir, 'sim-1'));
    assert.equal(n1.cert.subject, 'O=system:nodes\nCN=system:node:sim-1');
    assert.equal(n1.server, 'https://127.0.0.1:6443');
    const ca = new X509Certificate(await readFile(join(dir, 'pki', 'ca.crt')));
    assert.ok(n1.cert.checkIssued(ca) && n1.cert.verify(ca.publicKey));
    for (const f of [ids.controllers, nodeKubeconfig(ids.nodeDir, 'sim-0')]) assert.equal((await stat(f)).mode & 0o777, 0o600);

    // A restart on another port: the same certificates, the new address.
    await ensureComponentKubeconfigs(dir, join(dir, 'pki'), 'https://127.0.0.1:7443', ['sim-0', 'sim-1', 'sim-2']);
    const again = await read(nodeKubeconfig(ids.nodeDir, 'sim-1'));
    assert.equal(again.pem, n1.pem);
    assert.equal(again.server, 'https://127.0.0.1:7443');
    assert.equal((await read(nodeKubeconfig(ids.nodeDir, 'sim-2'))).cert.subject, 'O=system:nodes\nCN=system:node:sim-2');

    // A new CA (the pki directory recreated): every certificate is issued again.
    await rm(join(dir, 'pki'), { recursive: true });
    await ensurePki(join(dir, 'pki'), []);
    await ensureComponentKubeconfigs(dir, join(dir, 'pki'), 'https://127.0.0.1:7443', ['sim-1']);
    const ca2 = new X509Certificate(await readFile(join(dir, 'pki', 'ca.crt')));
    const renewed = await read(nodeKubeconfig(ids.nodeDir, 'sim-1'));
    assert.notEqual(renewed.pem, n1.pem);
    assert.ok(renewed.cert.checkIssued(ca2));
    assert.ok(!(await read(nodeKubeconfig(ids.nodeDir, 'sim-0'))).cert.checkIssued(ca2), 'sim-0 was not asked for');
  });
});
