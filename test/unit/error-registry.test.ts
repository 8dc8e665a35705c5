// The error registry (src/errors/), in the style of fastify's test/internals/errors.test.js: every constructor of
// every group is called, the count is pinned, codes are unique, docs/errors.md matches the registry, and the
// original's wire texts (errcode, HTTP status, message) are unchanged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  AuthErrors,
  ClientErrors,
  DbcError,
  FilterErrors,
  LanErrors,
  NodeErrors,
  StorageErrors,
  fill,
  holes,
  isError,
  registry,
  type ErrorDef,
} from '../../src/errors/index.js';
import * as viaProtocol from '../../src/protocol/errors.js';
import { renderRegistry, withRegistry } from '../../src/errors/docs.js';

/** entries in the registry: raise it when you add one (docs/errors.md "Adding an error") */
const EXPECTED_LIVE = 205;
/** free-text and transitional constructors: none left (issue 11) */
const EXPECTED_DEPRECATED = 0;

const GROUPS = { ClientErrors, NodeErrors, AuthErrors, StorageErrors, LanErrors, FilterErrors } as const;

type AnyCtor = ((...args: never[]) => DbcError) & { def?: ErrorDef };

/** constructors that are not a single registry entry: the calls to make (each must return a DbcError) */
const SPECIAL: Record<string, unknown[][]> = {};

/** every constructor called once per sample: group.name, the arguments and the error */
function callAll(): Array<{ name: string; args: unknown[]; err: DbcError; def: ErrorDef | undefined }> {
  const out: Array<{ name: string; args: unknown[]; err: DbcError; def: ErrorDef | undefined }> = [];
  for (const [group, members] of Object.entries(GROUPS)) {
    for (const [key, value] of Object.entries(members)) {
      const name = `${group}.${key}`;
      const ctor = value as AnyCtor;
      assert.equal(typeof ctor, 'function', `${name} is a constructor`);
      const samples = SPECIAL[name] ?? [holes(ctor.def?.text ?? '').map((h, i) => (i % 2 === 0 ? `<${h}>` : 1000 + i))];
      if (!SPECIAL[name]) assert.ok(ctor.def, `${name} has a registry entry (or a row in SPECIAL)`);
      for (const args of samples) {
        const err = (ctor as (...a: unknown[]) => DbcError)(...args);
        out.push({ name, args, err, def: ctor.def });
      }
    }
  }
  return out;
}

test('the registry has the expected number of entries', () => {
  assert.equal(registry.filter((d) => !d.deprecated).length, EXPECTED_LIVE);
  assert.equal(registry.filter((d) => d.deprecated).length, EXPECTED_DEPRECATED);
});

test('codes are unique', () => {
  const seen = new Map<string, number>();
  for (const d of registry) seen.set(d.code, (seen.get(d.code) ?? 0) + 1);
  assert.deepEqual(
    [...seen].filter(([, n]) => n > 1),
    [],
  );
});

test('every constructor builds a DbcError of its own entry, with its text filled in', () => {
  const byCode = new Map(registry.map((d) => [d.code, d]));
  for (const { name, args, err, def } of callAll()) {
    assert.ok(err instanceof DbcError, `${name} returns a DbcError`);
    assert.ok(err instanceof Error && err.name === 'DbcError', name);
    const entry = byCode.get(err.code);
    assert.ok(entry, `${name}: code ${err.code} is in the registry`);
    if (def) assert.equal(def, entry, `${name} builds its own entry`);
    assert.equal(err.errcode, entry.errcode, name);
    assert.equal(err.httpStatus, entry.http, name);
    assert.equal(err.message, fill(entry.text, args), name);
    assert.doesNotMatch(err.message, /\{\w+\}/, `${name}: every variable part filled`);
    assert.deepEqual(err.toEnvelope(), { errcode: entry.errcode, message: err.message });
    if (def) assert.ok(isError(err, { def }), name);
  }
});

test('every registry entry is reachable from a group constructor', () => {
  const built = new Set(callAll().map((c) => c.err.code));
  assert.deepEqual(
    registry.map((d) => d.code).filter((c) => !built.has(c)),
    [],
  );
});

test('every constructor has its own code', () => {
  const owner = new Map<string, string>();
  for (const { name, err } of callAll()) {
    const other = owner.get(err.code);
    assert.ok(other === undefined || other === name, `${err.code} built by ${other} and ${name}`);
    owner.set(err.code, name);
  }
});

test('every error has a non-zero errcode of the original, an HTTP status and a code of its group', () => {
  const errcodes = new Set([-32600, -32601, -32701, -25, -3, -1]);
  for (const d of registry) {
    assert.notEqual(d.errcode, 0, d.code);
    assert.ok(errcodes.has(d.errcode), `${d.code}: errcode ${d.errcode}`);
    assert.ok([200, 400, 404, 408, 413, 429, 431, 500].includes(d.http), `${d.code}: HTTP ${d.http}`);
    // GPU-node errors arrive with HTTP 200 and errcode -3, as the original
    if (d.errcode === -3 && !d.code.startsWith('CLIENT_')) assert.equal(d.http, 200, d.code);
    assert.match(d.code, d.deprecated ? /^DBC_ERR_[A-Z_]+$/ : /^(CLIENT|NODE|AUTH|STORAGE|LAN|FILTER)_[A-Z0-9_]+$/, d.code);
    assert.ok(d.text.length > 0 && d.where.length > 0, d.code);
  }
});

test('docs/errors.md lists every code, as the registry has it', () => {
  const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
  for (const d of registry) assert.ok(doc.includes(`| ${d.code} | ${d.errcode} | ${d.http} |`), `${d.code} documented`);
  assert.ok(doc.includes(renderRegistry()));
  assert.equal(withRegistry(doc), doc, 'regenerate: npx tsc -p tsconfig.json && node dist/src/errors/docs.js --write');
});

test('src/protocol/errors.ts re-exports the registry', () => {
  assert.equal(viaProtocol.NodeErrors, NodeErrors);
  assert.equal(viaProtocol.DbcError, DbcError);
  assert.equal(viaProtocol.registry, registry);
});

// [error, errcode, HTTP, text]: the original's wire texts (original-dbc-node.md, api-*.test.ts); real clients compare them
const ORIGINAL: Array<[DbcError, number, number, string]> = [
  [ClientErrors.onlyPost(), -32600, 400, 'only support POST request'],
  [ClientErrors.invalidUri('/x'), -32600, 400, 'request uri is invalid, uri:/x'],
  [ClientErrors.notSupportUri('/api/v1/x'), -32601, 404, 'not support uri:/api/v1/x'],
  [ClientErrors.unhandled(), -32701, 500, 'Unhandled request'],
  [ClientErrors.invalidRequestsUri(), -32600, 400, 'invalid requests uri'],
  [ClientErrors.emptyBody(), -25, 400, 'http request body is empty'],
  [ClientErrors.noPeerList(), -25, 400, 'has no peer_nodes_list'],
  [ClientErrors.additionalNotObject(), -25, 400, 'additional is not object'],
  [ClientErrors.peerEmpty(), -25, 400, 'peer_nodeid is empty'],
  [ClientErrors.walletSignInvalid(), -25, 400, 'wallet_sign and multisig_wallets all invalid'],
  [ClientErrors.sessionWalletInvalid(), -25, 400, 'session_id and wallet all invalid'],
  [ClientErrors.createNodeRequestFailed(), -32701, 400, 'create node request failed'],
  [ClientErrors.timeout('stop task'), -1, 500, 'stop task timeout'],
  [ClientErrors.headOrTailInvalid(), -25, 400, 'head_or_tail is invalid"'],
  [ClientErrors.invalidLineNum(), -25, 400, 'invalid line num'],
  [ClientErrors.peersOption(), -25, 400, 'invalid option. the option is active or global'],
  [ClientErrors.uriUsage('/peers/active or /peers/global'), -25, 400, 'invalid uri, please use /peers/active or /peers/global'],
  [NodeErrors.taskNotExist(), -3, 200, 'task_id not exist'],
  [NodeErrors.taskIdLength(), -3, 200, 'wrong task id length'],
  [NodeErrors.passwdNotRunning(), -3, 200, 'Only the running task can change the password'],
  [NodeErrors.portConflict('ssh_port', 2222), -3, 200, 'port conflict, exist ssh_port = 2222'],
  [NodeErrors.taskBusy('creating'), -3, 200, 'task is creating, please try again later'],
  [AuthErrors.nonceCheckFailed(), -3, 200, 'check authority failed: nonce check failed'],
  [AuthErrors.notRented(), -3, 200, 'check authority failed: machine is not be rented'],
  [StorageErrors.pxeNoDisk(), -3, 200, 'pxe not support disk'],
  [StorageErrors.deleteVda(), -3, 200, "can not allowed to delete disk:'vda'"],
  [LanErrors.nameInvalid(), -3, 200, 'network name requires a combination of 6 to 10 letters or numbers'],
  [LanErrors.inUse(), -3, 200, 'network is in used, please delete task in the network first'],
  [LanErrors.cidrInvalid(), -3, 200, 'invalid ip cidr'],
];

test('the original wire texts are unchanged', () => {
  for (const [err, errcode, http, text] of ORIGINAL) {
    assert.deepEqual([err.errcode, err.httpStatus, err.message], [errcode, http, text], err.code);
  }
});

test('an argument is filled as it is: braces in it are not holes', () => {
  assert.equal(NodeErrors.taskState('{state}').message, 'task is {state}');
  assert.equal(StorageErrors.noSpace('/data', 10, 5).message, '/data have no enough space (need 10 bytes, free 5 bytes)');
});
