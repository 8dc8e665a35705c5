// The DBC error registry: a stable code, the DBC errcode, the exact text the original node and its real clients use,
// and the HTTP status of every error the node and the gateway raise. docs/errors.md lists them all.
//
// Layering decision (issue 11): this registry is the BOTTOM layer; every layer (vm, storage, net, images, rental,
// auth, node, api, ...) may import it and nothing else is needed to raise a DBC error. Codes, wire errcodes and texts
// are the DBC node's own domain (the original node itself produced them), not an API concern; api/ only turns a
// DbcError into an envelope (src/protocol/errors.ts toEnvelope, api/server.ts). src/protocol/errors.ts re-exports
// this module for older imports.
//
// Adding an error: one entry in the group's file (client.ts, node.ts, storage.ts, lan.ts, auth.ts) with a new unique
// code, a row in docs/errors.md, and the new count in test/unit/error-registry.test.ts. Texts are byte-for-byte from
// ../shared/reference/original-dbc-node.md unless the entry says `ours`.
import { DbcError } from './dbc-error.js';

export { DbcError, E_DEFAULT, E_TIMEOUT, RPC_INVALID_PARAMS, RPC_INVALID_REQUEST, RPC_METHOD_NOT_FOUND, RPC_RESPONSE_ERROR } from './dbc-error.js';
export { registry, isError, holes, fill, type ErrorArg, type ErrorCtor, type ErrorDef } from './dbc-error.js';
export { ClientErrors } from './client.js';
export { NodeErrors } from './node.js';
export { StorageErrors } from './storage.js';
export { LanErrors, FilterErrors } from './lan.js';
export { AuthErrors, CHECK_AUTHORITY_FAILED } from './auth.js';

/**
 * The text of an error as a renter may see it (a task's last_error, an operation's error): our own DbcError texts
 * as they are; anything else (QEMU, qemu-img, QMP, the file system) cut to its first line, QEMU's stderr dropped,
 * and every absolute path cut to its last component. The whole text goes to the node log.
 */
export function publicErrorText(err: unknown): string {
  if (err instanceof DbcError) return err.message;
  const raw = err instanceof Error ? err.message : String(err);
  return (raw.split('\n')[0] ?? '')
    .replace(/^(QEMU for VM \S+ [^:]*):.*$/, '$1 (details in the node log)')
    .replace(/(?:\/[^\s/'",:;()[\]]+)+\/?/g, (m) => m.replace(/\/+$/, '').split('/').pop() || '/')
    .slice(0, 500);
}
