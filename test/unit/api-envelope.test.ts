import { test } from 'node:test';
import assert from 'node:assert/strict';
import { atoi, clientPreCheck, parseBody } from '../../src/api/envelope.js';
import { DbcError } from '../../src/protocol/errors.js';
import { ROUTES } from '../../src/protocol/routes.js';
import type { DbcBody } from '../../src/protocol/types.js';

const NODE = 'ab'.repeat(32);

function parseError(raw: string | undefined): string {
  try {
    parseBody(raw);
  } catch (e) {
    assert.ok(e instanceof DbcError);
    assert.equal(e.httpStatus, 400);
    assert.equal(e.errcode, -25);
    return e.message;
  }
  assert.fail(`accepted: ${raw}`);
}

const withBase = (extra: Record<string, unknown>) => JSON.stringify({ peer_nodes_list: [NODE], additional: {}, ...extra });

test('empty, non-JSON and non-object bodies', () => {
  assert.equal(parseError(undefined), 'http request body is empty');
  assert.equal(parseError(''), 'http request body is empty');
  assert.match(parseError('{"a":'), /^json parse error: /);
  assert.equal(parseError('[1,2]'), 'invalid json');
  assert.equal(parseError('"text"'), 'invalid json');
  assert.equal(parseError('null'), 'invalid json');
});

test('parse_req_params texts, in the original order', () => {
  assert.equal(parseError('{}'), 'has no peer_nodes_list');
  assert.equal(parseError('{"peer_nodes_list":"x","additional":3}'), 'peer_nodes_list is not array');
  assert.equal(parseError('{"peer_nodes_list":[1]}'), 'peer_nodes_list item is not string');
  assert.equal(parseError('{"peer_nodes_list":[]}'), 'has no additional');
  assert.equal(parseError('{"peer_nodes_list":[],"additional":[]}'), 'additional is not object');
  assert.equal(parseError('{"peer_nodes_list":[],"additional":"{}"}'), 'additional is not object');
  assert.equal(parseError(withBase({ wallet: 1, nonce: 2 })), 'wallet is not string');
  assert.equal(parseError(withBase({ nonce: 2, sign: 3 })), 'nonce is not string');
  assert.equal(parseError(withBase({ sign: null })), 'sign is not string');
  assert.equal(parseError(withBase({ multisig_accounts: [] })), 'multisig_accounts is not object');
  assert.equal(parseError(withBase({ multisig_accounts: {} })), 'multisig_accounts has no member wallets');
  assert.equal(parseError(withBase({ multisig_accounts: { wallets: 'w' } })), 'multisig_accounts member wallets is not array');
  assert.equal(parseError(withBase({ multisig_accounts: { wallets: [1] } })), 'multisig_accounts member wallets item is not string');
  assert.equal(parseError(withBase({ multisig_accounts: { wallets: [] } })), 'multisig_accounts has no member threshold');
  assert.equal(parseError(withBase({ multisig_accounts: { wallets: [], threshold: 2 } })), 'multisig_accounts member threshold is not string');
  assert.equal(parseError(withBase({ multisig_accounts: { wallets: [], threshold: '2' } })), 'multisig_accounts has no member signs');
  assert.equal(parseError(withBase({ multisig_accounts: { wallets: [], threshold: '2', signs: {} } })), 'multisig_accounts member signs is not array');
  assert.equal(
    parseError(withBase({ multisig_accounts: { wallets: [], threshold: '2', signs: [{ wallet: 'a', nonce: 'b' }] } })),
    'multisig_accounts member signs item is invalid',
  );
  assert.equal(parseError(withBase({ session_id: 5 })), 'session_id is not string');
  assert.equal(parseError(withBase({ session_id_sign: false })), 'session_id_sign is not string');
  assert.equal(parseError(withBase({ rent_order: 37 })), 'rent_order is not string');
});

test('the parsed body keeps known keys only and peer_nodes_list[0] only', () => {
  const body = parseBody(
    Buffer.from(
      JSON.stringify({
        peer_nodes_list: [NODE, 'other'],
        additional: { cpu_cores: '4', nested: { a: [1] } },
        wallet: 'w',
        nonce: 'n',
        sign: 's',
        session_id: 'sid',
        session_id_sign: 'ss',
        rent_order: '0',
        multisig_accounts: { wallets: ['a', 'b'], threshold: '2', signs: [{ wallet: 'a', nonce: 'n', sign: 's', x: 1 }] },
        vm_xml: 'ignored',
        image_server: 'ignored',
      }),
    ),
  );
  assert.deepEqual(body, {
    peer_nodes_list: [NODE],
    additional: { cpu_cores: '4', nested: { a: [1] } },
    wallet: 'w',
    nonce: 'n',
    sign: 's',
    session_id: 'sid',
    session_id_sign: 'ss',
    rent_order: '0',
    multisig_accounts: { wallets: ['a', 'b'], threshold: '2', signs: [{ wallet: 'a', nonce: 'n', sign: 's' }] },
  });
  assert.deepEqual(parseBody('{"peer_nodes_list":[],"additional":{}}'), { peer_nodes_list: [], additional: {} });
});

function preCheck(routeId: keyof typeof ROUTES, extra: Partial<DbcBody>): string | null {
  try {
    clientPreCheck(ROUTES[routeId], { peer_nodes_list: [NODE], additional: {}, ...extra });
    return null;
  } catch (e) {
    assert.ok(e instanceof DbcError);
    assert.equal(e.httpStatus, 400);
    assert.equal(e.errcode, -25);
    return e.message;
  }
}

const multisig = (threshold: string, signs: Array<{ wallet: string; nonce: string; sign: string }>) => ({
  multisig_accounts: { wallets: ['a', 'b', 'c'], threshold, signs },
});

test('pre-check: no credential needed for machine info', () => {
  assert.equal(preCheck('mining_nodes.info', {}), null);
});

test('pre-check: a wallet triple or a valid-looking multisig passes', () => {
  assert.equal(preCheck('tasks.list', { wallet: 'w', nonce: 'n', sign: 's' }), null);
  assert.equal(preCheck('mining_nodes.session_id', { wallet: 'w', nonce: 'n', sign: 's' }), null);
  assert.equal(
    preCheck(
      'tasks.start',
      multisig('2', [
        { wallet: 'a', nonce: 'n', sign: 's' },
        { wallet: 'b', nonce: 'n', sign: 's' },
      ]),
    ),
    null,
  );
});

test('pre-check: session pair for session routes, not for wallet-only routes', () => {
  assert.equal(preCheck('tasks.detail', { session_id: 'sid', session_id_sign: 'sig' }), null);
  assert.equal(preCheck('tasks.create', { session_id: 'sid', session_id_sign: 'sig' }), null);
  assert.equal(preCheck('mining_nodes.session_id', { session_id: 'sid', session_id_sign: 'sig' }), 'wallet_sign and multisig_wallets all invalid');
});

test('pre-check texts: create says session_id..., the other routes wallet_sign... (as the original)', () => {
  assert.equal(preCheck('tasks.create', {}), 'session_id and wallet all invalid');
  assert.equal(preCheck('tasks.list', {}), 'wallet_sign and multisig_wallets all invalid');
  assert.equal(preCheck('tasks.passwd', { session_id: 'sid' }), 'wallet_sign and multisig_wallets all invalid');
});

test('pre-check: "undefined" and "" are empty (what String(undefined) clients send)', () => {
  assert.equal(preCheck('tasks.list', { wallet: 'w', nonce: 'undefined', sign: 's' }), 'wallet_sign and multisig_wallets all invalid');
  assert.equal(preCheck('tasks.list', { wallet: '', nonce: 'n', sign: 's' }), 'wallet_sign and multisig_wallets all invalid');
  assert.equal(preCheck('tasks.create', { session_id: 'undefined', session_id_sign: 'undefined' }), 'session_id and wallet all invalid');
});

test('pre-check: malformed multisig is no credential (and an absent one never passes)', () => {
  const ok = { wallet: 'a', nonce: 'n', sign: 's' };
  const refused = 'wallet_sign and multisig_wallets all invalid';
  assert.equal(preCheck('tasks.list', multisig('2', [ok])), refused); // threshold > signs
  assert.equal(preCheck('tasks.list', multisig('4', [ok, ok, ok, ok])), refused); // threshold > wallets
  assert.equal(preCheck('tasks.list', multisig('1', [{ wallet: 'z', nonce: 'n', sign: 's' }])), refused); // not a member
  assert.equal(preCheck('tasks.list', multisig('1', [{ wallet: 'a', nonce: '', sign: 's' }])), refused);
  assert.equal(preCheck('tasks.list', multisig('0', [])), refused);
  assert.equal(preCheck('tasks.list', multisig('x', [ok])), refused);
});

test('atoi behaves like C', () => {
  assert.equal(atoi('42'), 42);
  assert.equal(atoi('  7lines'), 7);
  assert.equal(atoi('-3'), -3);
  assert.equal(atoi('abc'), 0);
  assert.equal(atoi(''), 0);
  assert.equal(atoi('99999999999999'), 2147483647);
});

test('additional nested deeper than 32 levels is refused before it reaches the node', () => {
  const nest = (n: number) => '{"x":'.repeat(n) + '1' + '}'.repeat(n);
  const doc = (additional: string) => `{"peer_nodes_list":[],"additional":${additional}}`;
  assert.deepEqual(parseBody(doc(nest(32))).additional !== undefined, true);
  for (const deep of [nest(33), nest(100_000), `{"a":${'['.repeat(100_000)}${']'.repeat(100_000)}}`]) {
    assert.throws(
      () => parseBody(doc(deep)),
      (e: unknown) => e instanceof DbcError && e.message === 'additional is nested too deeply' && e.httpStatus === 400,
    );
  }
});
