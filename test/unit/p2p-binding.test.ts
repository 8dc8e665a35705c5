// The node_id -> peer binding record: what a client accepts (a record signed by node_id's sr25519 key, unexpired)
// and what it ignores (forged, expired, malformed, older), plus the DHT validator and selector built on it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { identityFromSeed } from '../../src/auth/identity.js';
import { cryptoReady } from '../../src/auth/verify.js';
import {
  BindingCache,
  bindingDhtKey,
  bindingMessage,
  decodeBinding,
  encodeBinding,
  makeBinding,
  MAX_BINDING_TTL_MS,
  selectBindingRecord,
  validateBindingRecord,
  verifyBinding,
  type SignedBinding,
} from '../../src/p2p/binding.js';

await cryptoReady();

const node = identityFromSeed('0x' + '11'.repeat(32));
const mallory = identityFromSeed('0x' + '22'.repeat(32));
const peerId = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString();
const otherPeer = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString();
const T0 = 1_800_000_000_000;

function rec(over: Partial<Parameters<typeof makeBinding>[0]> = {}): SignedBinding {
  return makeBinding({
    nodeId: node.nodeId,
    sign: node.sign,
    peerId,
    addrs: ['/ip4/127.0.0.1/tcp/4001', `/ip4/127.0.0.1/tcp/4001/p2p/${peerId}`, '/ip4/10.0.0.1/tcp/4001'],
    version: '0.4.1.8',
    name: 'gpu-1',
    ttlMs: 60_000,
    now: T0,
    ...over,
  });
}

test('a record signed by its node_id verifies; addresses are kept once, without /p2p/', () => {
  const b = rec();
  assert.deepEqual(b.addrs, ['/ip4/127.0.0.1/tcp/4001', '/ip4/10.0.0.1/tcp/4001']);
  assert.equal(b.expires, T0 + 60_000);
  assert.match(b.sig, /^[0-9a-f]{128}$/);
  const check = verifyBinding(b, { now: T0 + 1000 });
  assert.equal(check.ok, true);
  assert.deepEqual(check.ok && check.binding, b);
  // it survives the wire
  assert.equal(verifyBinding(decodeBinding(encodeBinding(b)), { now: T0 }).ok, true);
  // the signed text fixes the field order
  assert.equal(bindingMessage(b).startsWith('dbc-binding/1:["' + node.nodeId + '","' + peerId + '"'), true);
});

test('forged records are refused: another key, or any field changed after signing', () => {
  const b = rec();
  const reason = (v: unknown) => {
    const c = verifyBinding(v, { now: T0 });
    return c.ok ? 'ok' : c.reason;
  };
  // signed by mallory but claiming node's id
  const forged = makeBinding({ nodeId: node.nodeId, sign: mallory.sign, peerId: otherPeer, addrs: [], version: 'x', name: 'evil', now: T0 });
  assert.equal(reason(forged), 'bad signature');
  assert.equal(reason({ ...b, peer_id: otherPeer }), 'bad signature');
  assert.equal(reason({ ...b, addrs: ['/ip4/6.6.6.6/tcp/1'] }), 'bad signature');
  assert.equal(reason({ ...b, expires: b.expires + 1 }), 'bad signature');
  assert.equal(reason({ ...b, name: 'other' }), 'bad signature');
  assert.equal(reason({ ...b, sig: '00'.repeat(64) }), 'bad signature');
  assert.equal(reason({ ...b, sig: 'zz' }), 'bad signature');
});

test('expired, future-dated, over-long and malformed records are refused', () => {
  const reason = (v: unknown, now = T0) => {
    const c = verifyBinding(v, { now });
    return c.ok ? 'ok' : c.reason;
  };
  const b = rec();
  assert.equal(reason(b, b.expires), 'expired');
  assert.equal(reason(b, b.expires + 1), 'expired');
  assert.equal(reason(rec({ now: T0 + 3600_000 })), 'issued in the future');
  assert.equal(reason(rec({ ttlMs: MAX_BINDING_TTL_MS * 10 })), 'ok', 'makeBinding caps the TTL');
  assert.equal(reason(null), 'not an object');
  assert.equal(reason([b]), 'not an object');
  assert.equal(reason({ ...b, node_id: 'AB'.repeat(32) }), 'bad node_id');
  assert.equal(reason({ ...b, node_id: 'ab' }), 'bad node_id');
  assert.equal(reason({ ...b, peer_id: 'not-a-peer' }), 'bad peer_id');
  assert.equal(reason({ ...b, addrs: 'x' }), 'bad addrs');
  assert.equal(reason({ ...b, addrs: ['not a multiaddr'] }), 'bad addrs');
  assert.equal(reason({ ...b, addrs: new Array(17).fill('/ip4/1.2.3.4/tcp/1') }), 'bad addrs');
  assert.equal(reason({ ...b, issued: '1' }), 'bad issued or expires');
  assert.equal(reason({ ...b, version: 5 }), 'bad version or name');
  assert.equal(verifyBinding(b, { now: T0, nodeId: mallory.nodeId }).ok, false);
  assert.throws(() => decodeBinding(new Uint8Array(9000)), /larger than/);
  assert.throws(() => decodeBinding(new TextEncoder().encode('{nope')));
});

test('the cache keeps the newest valid record per node_id and forgets it at expiry', () => {
  let now = T0;
  const cache = new BindingCache(() => now);
  const first = rec();
  assert.equal(cache.offer(first), 'accepted');
  assert.equal(cache.offer(first), 'unchanged');
  const restarted = rec({ now: T0 + 5000, addrs: ['/ip4/127.0.0.1/tcp/5002'] });
  now = T0 + 5000;
  assert.equal(cache.offer(restarted), 'accepted');
  assert.equal(cache.get(node.nodeId)?.addrs[0], '/ip4/127.0.0.1/tcp/5002');
  assert.equal(cache.offer(first), 'older', 'a replayed older record does not roll the binding back');
  const forged = { ...rec({ now: T0 + 9000 }), peer_id: otherPeer };
  assert.match(cache.offer(forged), /^rejected: bad signature/);
  assert.equal(cache.get(node.nodeId)?.peer_id, peerId);
  assert.equal(cache.byPeer(peerId)?.node_id, node.nodeId);
  assert.equal(cache.get(node.nodeId.toUpperCase())?.node_id, node.nodeId);
  now = restarted.expires;
  assert.equal(cache.get(node.nodeId), undefined);
  assert.deepEqual(cache.all(), []);
  assert.match(cache.offer(restarted), /^rejected: expired/);
});

test('the cache is bounded', () => {
  const cache = new BindingCache(() => T0, 1);
  assert.equal(cache.offer(rec()), 'accepted');
  const other = makeBinding({ nodeId: mallory.nodeId, sign: mallory.sign, peerId: otherPeer, addrs: [], version: 'v', name: 'm', now: T0 });
  assert.equal(cache.offer(other), 'rejected: cache full');
});

test("DHT validator and selector: /dbc/<node_id> holds only that node_id's valid records, newest wins", () => {
  const now = Date.now();
  const a = rec({ now: now - 2000, ttlMs: 600_000 });
  const b = rec({ now: now - 1000, ttlMs: 600_000 });
  const key = bindingDhtKey(node.nodeId);
  assert.equal(new TextDecoder().decode(key), `/dbc/${node.nodeId}`);
  validateBindingRecord(key, encodeBinding(b));
  assert.throws(() => validateBindingRecord(bindingDhtKey(mallory.nodeId), encodeBinding(b)), /node_id mismatch/);
  assert.throws(() => validateBindingRecord(key, encodeBinding({ ...b, peer_id: otherPeer })), /bad signature/);
  assert.throws(() => validateBindingRecord(key, new TextEncoder().encode('junk')));
  const forgedNewer = encodeBinding({ ...rec({ now, ttlMs: 600_000 }), peer_id: otherPeer });
  assert.equal(selectBindingRecord(key, [encodeBinding(a), forgedNewer, encodeBinding(b)]), 2);
  assert.equal(selectBindingRecord(key, [encodeBinding(b), encodeBinding(a)]), 0);
});
