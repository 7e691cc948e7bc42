// A real etcd with a Store and a ResourceStore over kova's CRDs on it, its namespace cache
// running: the setup of tests that drive the API server's storage layer (or an ApiServer) directly.
import { KubeConfig } from '@kubernetes/client-node';
import { defaultCrdDir, Registry } from '../api/registry.js';
import { KovaClient } from '../client/client.js';
import { Validator } from '../api/validation.js';
import { ResourceStore } from '../apiserver/resource-store.js';
import { Store } from '../store/store.js';
import { startTestEtcd } from './etcd.js';
import type { TestEtcd } from './etcd.js';

export interface TestResourceStore {
  etcd: TestEtcd;
  store: Store;
  registry: Registry;
  resources: ResourceStore;
  /** Stops the namespace cache, closes the store and removes etcd. */
  stop(): Promise<void>;
}

/** Starts it all and creates `namespaces`. */
export async function startTestResourceStore(namespaces: string[] = []): Promise<TestResourceStore> {
  const etcd = await startTestEtcd();
  const store = Store.connect(etcd.endpoints);
  const registry = await Registry.load(defaultCrdDir());
  const resources = new ResourceStore(store, registry, new Validator(registry));
  await resources.namespaces.start();
  const nsInfo = registry.lookup('', 'v1', 'namespaces')!;
  for (const name of namespaces) await resources.create(nsInfo, undefined, { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  return {
    etcd, store, registry, resources,
    stop: async () => {
      await resources.namespaces.stop();
      await store.close();
      await etcd.cleanup();
    },
  };
}

/** A client of an API server listening on plain HTTP at `url`, without credentials (auth off). */
export function plainHttpClient(url: string, userAgent: string): KovaClient {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: url, skipTLSVerify: true }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return new KovaClient(kc, { userAgent });
}

export interface JsonReply {
  code: number;
  body: Record<string, any>;
}

/** One plain (credential-less) HTTP request to a test API server, its JSON answer parsed. */
export async function jsonRequest(base: string, method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<JsonReply> {
  const res = await fetch(base + path, { method, body: body === undefined ? undefined : JSON.stringify(body), headers: { 'Content-Type': contentType } });
  const text = await res.text();
  return { code: res.status, body: text ? JSON.parse(text) : {} };
}
