// The garbage collector's view of the cluster, built from metadata watches of every kind: the
// uid of every object (so "is the owner there?" is a lookup, as in kube's graph), and the
// objects that can matter (with owners, or an orphan/foregroundDeletion finalizer) indexed by
// the uids of their owners. Pure: the controller feeds it events and asks what to reconcile.
import type { OwnerReference } from '../../api/types.js';
import type { Kind } from '../../client/client.js';
import type { PartialObjectMetadata } from '../../client/metadata.js';
import { DeletedUids } from '../../client/deleted-uids.js';
import { stringAfter } from '../../client/ndjson-lines.js';

export interface GcNode {
  kind: Kind;
  namespace?: string;
  name: string;
  uid: string;
  owners: OwnerReference[];
  deleting: boolean;
  finalizers: string[];
}

export const ORPHAN = 'orphan';
export const FOREGROUND = 'foregroundDeletion';

const MAY_MATTER = ['"ownerReferences"', '"orphan"', '"foregroundDeletion"'].map((s) => Buffer.from(s));
const UID = Buffer.from('"uid":"');
const mayMatter = (line: Buffer) => MAY_MATTER.some((m) => line.includes(m));
const kindKey = (k: Pick<Kind, 'group' | 'plural'>) => `${k.group}/${k.plural}`;
const matters = (n: Pick<GcNode, 'owners' | 'finalizers'>) => n.owners.length > 0 || n.finalizers.includes(ORPHAN) || n.finalizers.includes(FOREGROUND);
const ownersKey = (refs: OwnerReference[]) => refs.map((r) => `${r.uid}:${r.blockOwnerDeletion ? 1 : 0}`).join(',');

export class GcGraph {
  /** Objects that can matter, by uid. */
  readonly nodes = new Map<string, GcNode>();
  /** Every object of a watched kind: uid → its kind's key. */
  private readonly known = new Map<string, string>();
  /** owner uid → uids of the nodes that reference it. */
  private readonly dependents = new Map<string, Set<string>>();
  /** The uids of the latest deletions the watches reported. */
  private readonly deletedUids = new DeletedUids();

  /** Whether an object with this uid is currently there, as far as the watches have told. */
  has(uid: string): boolean {
    return this.known.has(uid);
  }

  /** Whether the watches reported this uid's object deleted (one of the last DELETED_UIDS_KEPT): gone for good. */
  wasDeleted(uid: string): boolean {
    return this.deletedUids.has(uid);
  }

  /**
   * Whether a MODIFIED event, as its JSON line in bytes, can be skipped undecoded: the object is known
   * and does not matter, and the line names no owner references and no orphan or
   * foregroundDeletion finalizer, so it still does not. Then the only uid in it is the object's.
   */
  unchangedPlain(line: Buffer): boolean {
    if (mayMatter(line)) return false;
    const uid = stringAfter(line, UID);
    return uid !== undefined && this.known.has(uid) && !this.nodes.has(uid);
  }

  /**
   * An ADDED event, as its JSON line in bytes, of an object that cannot matter (no owner references, no
   * orphan or foregroundDeletion finalizer named in it): recorded as present from its uid
   * alone, without decoding. False when the line must be decoded.
   */
  addedPlain(kind: Kind, line: Buffer): boolean {
    if (mayMatter(line)) return false;
    const uid = stringAfter(line, UID);
    if (uid === undefined || this.nodes.has(uid)) return false;
    this.known.set(uid, kindKey(kind));
    this.deletedUids.forget(uid);
    return true;
  }

  get size(): number {
    return this.known.size;
  }

  /**
   * An object was added or changed; returns the uids to reconcile: the object itself when it
   * is new to the graph, or its owners, deletion state or finalizers changed (most writes, a
   * status update, change none of that and cost nothing more).
   */
  upsert(kind: Kind, obj: PartialObjectMetadata): string[] {
    const m = obj.metadata;
    const uid = m.uid;
    if (!uid || !m.name) return [];
    this.known.set(uid, kindKey(kind));
    this.deletedUids.forget(uid);
    const prev = this.nodes.get(uid);
    const next: GcNode = {
      kind, namespace: m.namespace, name: m.name, uid,
      owners: m.ownerReferences ?? [], deleting: !!m.deletionTimestamp, finalizers: m.finalizers ?? [],
    };
    if (!matters(next)) {
      if (prev) this.unlink(prev);
      return [];
    }
    if (prev && prev.deleting === next.deleting && ownersKey(prev.owners) === ownersKey(next.owners)
      && prev.finalizers.includes(ORPHAN) === next.finalizers.includes(ORPHAN) && prev.finalizers.includes(FOREGROUND) === next.finalizers.includes(FOREGROUND)) {
      this.nodes.set(uid, next);
      return [];
    }
    if (prev) this.unlink(prev);
    this.nodes.set(uid, next);
    for (const r of next.owners) {
      let set = this.dependents.get(r.uid);
      if (!set) this.dependents.set(r.uid, (set = new Set()));
      set.add(uid);
    }
    return [uid];
  }

  /** An object was deleted; returns the uids to reconcile: its dependents, and the owners it may have kept waiting. */
  remove(uid: string): string[] {
    this.known.delete(uid);
    this.deletedUids.add(uid);
    const node = this.nodes.get(uid);
    if (node) this.unlink(node);
    const out = [...(this.dependents.get(uid) ?? [])];
    if (node) for (const r of node.owners) if (this.nodes.has(r.uid)) out.push(r.uid);
    return out;
  }

  /** A fresh list of one kind: objects of it no longer there were deleted meanwhile. Returns the uids to reconcile. */
  replace(kind: Kind, items: PartialObjectMetadata[]): string[] {
    const k = kindKey(kind);
    const present = new Set(items.map((o) => o.metadata.uid));
    const out: string[] = [];
    for (const [uid, kk] of [...this.known]) if (kk === k && !present.has(uid)) out.push(...this.remove(uid));
    for (const o of items) out.push(...this.upsert(kind, o));
    return out;
  }

  /** The nodes that reference the object with this uid. */
  dependentsOf(uid: string): GcNode[] {
    return [...(this.dependents.get(uid) ?? [])]
      .map((d) => this.nodes.get(d))
      .filter((n): n is GcNode => !!n && n.owners.some((r) => r.uid === uid));
  }

  private unlink(node: GcNode) {
    this.nodes.delete(node.uid);
    for (const r of node.owners) {
      const set = this.dependents.get(r.uid);
      if (set?.delete(node.uid) && !set.size) this.dependents.delete(r.uid);
    }
  }
}
