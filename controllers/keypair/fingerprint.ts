// SSH public key fingerprints as `ssh-keygen -l` prints them: "SHA256:" and the unpadded
// base64 of the SHA-256 of the key blob (the base64 field of the authorized_keys line).
import { createHash } from 'node:crypto';

/** Throws when the line is not `<type> <base64 blob> [comment]` with a blob of that type. */
export function sshFingerprint(publicKey: string): string {
  const fields = publicKey.trim().split(/\s+/);
  if (fields.length < 2) throw new Error('expected "<type> <base64 key> [comment]"');
  const [type, b64] = fields;
  if (!/^[A-Za-z0-9+/]+={0,3}$/.test(b64)) throw new Error('the key is not valid base64');
  const blob = Buffer.from(b64, 'base64');
  // The blob starts with its own type as an SSH string (uint32 length + bytes).
  const len = blob.length >= 4 ? blob.readUInt32BE(0) : -1;
  const inner = len >= 0 && 4 + len <= blob.length ? blob.subarray(4, 4 + len).toString('latin1') : undefined;
  if (inner !== type) throw new Error(`the key blob is not a ${type} key${inner ? ` (it says ${inner})` : ''}`);
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}
