// The uids of the latest deletions a watch reported: a bounded set, oldest forgotten first.
// A uid is never given to another object, so an object whose deletion was seen is gone for
// good and need not be read to confirm it (kube's garbage collector keeps an absentOwnerCache
// of owners it read and found missing, to the same end). One forgotten is simply read again.

/** How many uids a DeletedUids remembers by default. */
export const DELETED_UIDS_KEPT = 10_000;

export class DeletedUids {
  private readonly uids = new Set<string>();

  constructor(private readonly max = DELETED_UIDS_KEPT) {}

  /** A watch reported the deletion of the object with this uid. */
  add(uid: string): void {
    this.uids.delete(uid);
    this.uids.add(uid);
    if (this.uids.size > this.max) this.uids.delete(this.uids.values().next().value!);
  }

  /** The object was seen again (only a stale read could show it): believe it is there, the safe side. */
  forget(uid: string): void {
    this.uids.delete(uid);
  }

  has(uid: string): boolean {
    return this.uids.has(uid);
  }
}
