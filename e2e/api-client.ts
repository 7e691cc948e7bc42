// A tiny JSON client over a kubeconfig's server, CA and token, for tests that need exact
// control of requests (status codes, raw watch streams) below client-node and kubectl.
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import { parse as parseYaml } from 'yaml';

export type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export async function apiClient(kubeconfig: string) {
  const kc = parseYaml(await readFile(kubeconfig, 'utf8'));
  const server = new URL(kc.clusters[0].cluster.server);
  const ca = Buffer.from(kc.clusters[0].cluster['certificate-authority-data'], 'base64');
  const token = kc.users[0].user.token as string;
  const agent = new https.Agent({ keepAlive: true, ca, maxSockets: 64 });
  const request = (method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<{ code: number; body: Obj }> =>
    new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const req = https.request(
        { host: server.hostname, port: server.port, path, method, agent, headers: { Authorization: `Bearer ${token}`, 'Content-Type': contentType, ...(data ? { 'Content-Length': Buffer.byteLength(data) } : {}) } },
        (res) => {
          let text = '';
          res.on('data', (d) => (text += d));
          res.on('end', () => resolve({ code: res.statusCode ?? 0, body: text ? JSON.parse(text) : {} }));
        },
      );
      req.on('error', reject);
      req.end(data);
    });

  /** Opens a watch stream; `events` fills as lines arrive, `ended` resolves when the server closes it. */
  const watch = (path: string) => {
    const events: Array<{ type: string; object: Obj }> = [];
    let status = 0;
    const req = https.request({ host: server.hostname, port: server.port, path, agent: new https.Agent({ ca }), headers: { Authorization: `Bearer ${token}` } });
    const ended = new Promise<void>((resolve, reject) => {
      req.on('response', (res) => {
        status = res.statusCode ?? 0;
        let buf = '';
        res.on('data', (d) => {
          buf += d;
          for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
            events.push(JSON.parse(buf.slice(0, i)));
            buf = buf.slice(i + 1);
          }
        });
        res.on('end', () => resolve());
        res.on('close', () => resolve());
      });
      req.on('error', (e) => (req.destroyed ? resolve() : reject(e)));
    });
    req.end();
    return { events, ended, status: () => status, close: () => req.destroy() };
  };

  return Object.assign(request, { watch });
}
