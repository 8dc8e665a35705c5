// The chain rental source against the fake DBC chain: which orders count, rent_order forms, multisig renters,
// committee windows, machine status mapping, block time from the chain, per-block caching, endpoint ranking and
// fail-over, and the outage grace.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeAddress, decodeAddress } from '@polkadot/util-crypto';
import { identityFromSeed } from '../../src/auth/identity.js';
import { multisigAccount } from '../../src/auth/multisig.js';
import { cryptoReady } from '../../src/auth/verify.js';
import { ChainRentals, mapMachineStatus, parseRentOrder } from '../../src/rental/chain.js';
import { ChainRpc, ChainUnreachableError, RawNumber, normalizeEndpoint, rpcBody } from '../../src/rental/chain-rpc.js';
import { FakeChain, chainCall } from '../../src/rental/fake-chain.js';
import { RentalUnavailableError } from '../../src/rental/types.js';
import { freeTcpPort } from '../helpers/devnet.js';

await cryptoReady();

const MACHINE = 'a1'.repeat(32);
const OTHER_MACHINE = 'b2'.repeat(32);
const alice = identityFromSeed('11'.repeat(32));
const bob = identityFromSeed('22'.repeat(32));
const carol = identityFromSeed('33'.repeat(32));
const BLOCK_MS = 2000; // not 6000: the source must read it from the chain

interface World {
  chain: FakeChain;
  url: string;
  src: ChainRentals;
}

async function world(opts: Partial<ConstructorParameters<typeof ChainRentals>[0]> = {}): Promise<World> {
  const chain = new FakeChain({ block: 1000, blockMs: BLOCK_MS });
  const url = await chain.listen();
  chain.setMachine(MACHINE, 'rented', 4);
  const src = new ChainRentals({ machineId: MACHINE, rpc: { endpoints: [url] }, headTtlMs: 0, ...opts });
  return { chain, url, src };
}

describe('chain rentals: orders', () => {
  let w: World;
  before(async () => {
    w = await world();
  });
  after(async () => {
    await w.chain.close();
  });

  test('a renting order lets its renter in, with the GPUs and end from the order; the block time comes from the chain', async () => {
    const id = w.chain.addOrder({ machineId: MACHINE, renter: alice.address, rentEnd: 1600, gpuNum: 2, gpuIndex: [1, 3] });
    const head = w.chain.block;
    const now = Date.now();
    const r = await w.src.active(alice.address, now);
    assert.ok(r);
    assert.equal(r.account, alice.address);
    assert.equal(r.gpus, 2);
    assert.deepEqual(r.gpuIndex, [1, 3]);
    assert.equal(r.rentOrder, String(id));
    assert.equal(r.rentEnd, 1600);
    assert.equal(r.role, 'renter');
    assert.equal(await w.src.blockTimeMs(), BLOCK_MS);
    assert.equal(r.untilMs, now + (1600 - head) * BLOCK_MS);
    assert.equal(w.src.describe().blockTimeSource, 'chain');
    assert.equal(await w.src.machineStatus(now), 'rented');
    w.chain.removeOrder(id);
  });

  test('a waitingVerifying order (rented, not yet confirmed) counts; rentExpired does not', async () => {
    const waiting = w.chain.addOrder({ machineId: MACHINE, renter: alice.address, rentEnd: 1600, rentStatus: 'waitingVerifying' });
    assert.ok(await w.src.active(alice.address, Date.now()));
    w.chain.setOrder(waiting, { rentStatus: 'rentExpired' });
    assert.equal(await w.src.active(alice.address, Date.now()), null);
    w.chain.removeOrder(waiting);
  });

  test('an order whose rentEnd the head reached no longer counts (listed or already removed by the chain)', async () => {
    const id = w.chain.addOrder({ machineId: MACHINE, renter: alice.address, rentEnd: w.chain.block + 600 });
    // still listed with head = rentEnd (as a node that has not finalized the block yet would show it)
    w.chain.orders.get(id)!.rentEnd = w.chain.block;
    const fresh = new ChainRentals({ machineId: MACHINE, rpc: { endpoints: [w.url] } });
    assert.equal(await fresh.active(alice.address, Date.now()), null);
    const known = await fresh.known(Date.now());
    assert.equal(known.length, 1);
    assert.ok(known[0]!.untilMs <= Date.now());

    w.chain.orders.get(id)!.rentEnd = w.chain.block + 3;
    w.chain.advance(1);
    assert.ok(await w.src.active(alice.address, Date.now()));
    w.chain.advance(2); // the chain removes it at rentEnd
    assert.equal(w.chain.orders.size, 0);
    assert.equal(await w.src.active(alice.address, Date.now()), null);
    assert.equal(await w.src.machineStatus(Date.now()), 'online');
    w.chain.setMachine(MACHINE, 'rented');
  });

  test('another renter, or an order on another machine, does not let a wallet in', async () => {
    const a = w.chain.addOrder({ machineId: MACHINE, renter: alice.address, rentEnd: 1600 });
    const b = w.chain.addOrder({ machineId: OTHER_MACHINE, renter: bob.address, rentEnd: 1600 });
    assert.equal(await w.src.active(bob.address, Date.now()), null);
    assert.equal(await w.src.active(bob.address, Date.now(), String(b)), null, "bob's order is for another machine");
    assert.equal(await w.src.active(bob.address, Date.now(), String(a)), null, "alice's order is not bob's");
    w.chain.removeOrder(a);
    w.chain.removeOrder(b);
  });

  test('rent_order: an id picks that order (0 is an id); absent, "" and "undefined" find the wallet\'s order', async () => {
    w.chain.nextRentId = 0;
    const zero = w.chain.addOrder({ machineId: MACHINE, renter: alice.address, rentEnd: 1600, gpuNum: 1 });
    const other = w.chain.addOrder({ machineId: MACHINE, renter: bob.address, rentEnd: 1600, gpuNum: 1 });
    assert.equal(zero, 0);
    assert.equal((await w.src.active(alice.address, Date.now(), '0'))?.rentOrder, '0');
    for (const form of [undefined, '', 'undefined', 'null']) {
      assert.equal((await w.src.active(alice.address, Date.now(), form))?.rentOrder, '0', String(form));
    }
    assert.equal(await w.src.active(alice.address, Date.now(), String(other)), null);
    assert.equal(await w.src.active(alice.address, Date.now(), '999'), null, 'an unknown id (chain: NotFound)');
    assert.equal(await w.src.active(alice.address, Date.now(), '99999999999999999999'), null, 'beyond u64');
    w.chain.removeOrder(zero);
    w.chain.removeOrder(other);
  });

  test('several live orders of one renter add up', async () => {
    const a = w.chain.addOrder({ machineId: MACHINE, renter: alice.address, rentEnd: 1600, gpuNum: 1, gpuIndex: [0] });
    const b = w.chain.addOrder({ machineId: MACHINE, renter: alice.address, rentEnd: 1800, gpuNum: 2, gpuIndex: [2, 3] });
    const r = await w.src.active(alice.address, Date.now());
    assert.equal(r?.gpus, 3);
    assert.deepEqual(r?.gpuIndex, [0, 2, 3]);
    assert.equal(r?.rentEnd, 1800);
    assert.equal(r?.rentOrder, `${a},${b}`);
    w.chain.removeOrder(a);
    w.chain.removeOrder(b);
  });

  test('a multisig renter is the Substrate multisig account; accounts compare by key, not by SS58 spelling', async () => {
    const ms = multisigAccount([alice.address, bob.address, carol.address], 2);
    const id = w.chain.addOrder({ machineId: MACHINE, renter: ms, rentEnd: 1600, gpuNum: 1 });
    assert.ok(await w.src.active(ms, Date.now()));
    assert.ok(await w.src.active(multisigAccount([carol.address, alice.address, bob.address], 2), Date.now()), 'member order');
    assert.equal(await w.src.active(alice.address, Date.now()), null, 'a member alone is not the renter');
    assert.equal(await w.src.active(multisigAccount([alice.address, bob.address, carol.address], 3), Date.now()), null);
    const otherPrefix = encodeAddress(decodeAddress(ms), 0);
    assert.notEqual(otherPrefix, ms);
    assert.ok(await w.src.active(otherPrefix, Date.now()));
    w.chain.removeOrder(id);
  });
});

describe('chain rentals: machine status and committee windows', () => {
  let w: World;
  before(async () => {
    w = await world();
  });
  after(async () => {
    await w.chain.close();
  });

  test('machine status maps as the original (CHAIN:129-141)', async () => {
    const cases: Array<[unknown, string]> = [
      ['addingCustomizeInfo', 'verify'],
      ['distributingOrder', 'verify'],
      ['committeeVerifying', 'verify'],
      [{ committeeRefused: 12 }, 'verify'],
      ['waitingFulfill', 'online'],
      ['online', 'online'],
      ['Online', 'online'],
      ['creating', 'rented'],
      ['rented', 'rented'],
      [{ stakerReportOffline: [1, 'x'] }, 'unknown'],
      ['exit', 'unknown'],
    ];
    for (const [raw, want] of cases) {
      assert.equal(mapMachineStatus(raw), want, JSON.stringify(raw));
      w.chain.setMachine(MACHINE, raw);
      w.chain.advance(1); // new block: the cached status is dropped
      assert.equal(await w.src.machineStatus(Date.now()), want, JSON.stringify(raw));
    }
    const unregistered = new ChainRentals({ machineId: OTHER_MACHINE, rpc: { endpoints: [w.url] } });
    assert.equal(await unregistered.machineStatus(Date.now()), 'unknown');
  });

  test('a committee member is a verifier in (v, v + 4 h of blocks] of its verify times, and not otherwise', async () => {
    w.chain.setBlock(1000);
    w.chain.setMachine(MACHINE, 'committeeVerifying');
    const window = (4 * 3600_000) / BLOCK_MS; // 7200 blocks at 2 s (2400 at 6 s)
    w.chain.setCommittee(alice.address, MACHINE, [1000, 20000, 40000]);
    const at = async (block: number) => {
      w.chain.setBlock(block);
      return w.src.verifier(alice.address, Date.now());
    };
    assert.equal(await at(1000), null, 'the window opens after the verify time');
    const inside = await at(1001);
    assert.ok(inside);
    assert.equal(inside.role, 'verifier');
    assert.equal(inside.rentEnd, 1000 + window);
    assert.ok(await at(1000 + window));
    assert.equal(await at(1001 + window), null);
    assert.ok(await at(20001));
    assert.equal(await w.src.verifier(bob.address, Date.now()), null, 'not a committee member of this machine');
    assert.equal(await w.src.verifier('not-an-address', Date.now()), null);
  });

  test('terminatingRental_* methods when configured', async () => {
    const src = new ChainRentals({ machineId: MACHINE, rpc: { endpoints: [w.url] }, terminatingRental: true, headTtlMs: 0 });
    w.chain.setMachine(MACHINE, 'rented');
    w.chain.addOrder({ machineId: MACHINE, renter: alice.address, rentEnd: w.chain.block + 100 });
    w.chain.calls.clear();
    assert.ok(await src.active(alice.address, Date.now()));
    assert.equal(await src.machineStatus(Date.now()), 'rented');
    await src.verifier(alice.address, Date.now());
    const methods = [...w.chain.calls.keys()];
    for (const m of [
      'terminatingRental_getMachineRentId',
      'terminatingRental_getRentOrder',
      'terminatingRental_getMachineInfo',
      'terminatingRental_getCommitteeOps',
    ]) {
      assert.ok(methods.includes(m), `${m} in ${methods.join(',')}`);
    }
    assert.ok(!methods.some((m) => m.startsWith('rentMachine_') || m.startsWith('onlineProfile_')));
  });
});

describe('chain rentals: caching, endpoints, outage', () => {
  test('answers are cached for the block: many requests in one block cost one query each', async () => {
    const w = await world({ headTtlMs: 60_000 });
    try {
      w.chain.addOrder({ machineId: MACHINE, renter: alice.address, rentEnd: 1600 });
      const now = Date.now();
      await Promise.all(Array.from({ length: 20 }, () => w.src.active(alice.address, now)));
      for (let i = 0; i < 10; i++) await w.src.machineStatus(now + i);
      assert.equal(w.chain.callCount('rentMachine_getRentOrder'), 1);
      assert.equal(w.chain.callCount('rentMachine_getMachineRentId'), 1);
      assert.equal(w.chain.callCount('onlineProfile_getMachineInfo'), 1);
      assert.equal(w.chain.callCount('chain_getBlock'), 2, 'ranking + one head read within the head TTL');
      // a new block (seen once the head TTL passed) asks again
      w.chain.advance(1);
      await w.src.active(alice.address, now + 60_000);
      assert.equal(w.chain.callCount('rentMachine_getRentOrder'), 2);
    } finally {
      await w.chain.close();
    }
  });

  test('endpoints are ranked by block height, then latency; a dead endpoint is failed over', async () => {
    const low = new FakeChain({ block: 500 });
    const high = new FakeChain({ block: 900 });
    const lowUrl = await low.listen();
    const highUrl = await high.listen();
    const dead = `http://127.0.0.1:${await freeTcpPort()}/`;
    try {
      const rpc = new ChainRpc({ endpoints: [dead, lowUrl, highUrl], timeoutMs: 2000 });
      const ranked = await rpc.rank();
      assert.deepEqual(
        ranked.map((e) => e.url),
        [highUrl, lowUrl, dead],
      );
      assert.equal(ranked[2]!.block, 0);
      high.offline = true;
      const block = await rpc.call<{ block: { header: { number: string } } }>('chain_getBlock');
      assert.equal(block.block.header.number, '0x1f4', 'the lower endpoint answered when the best one did not');
      assert.equal(rpc.endpoints()[0]!.url, lowUrl, 'the silent endpoint went to the back');
      low.offline = true;
      await assert.rejects(rpc.call('chain_getBlock'), ChainUnreachableError);
    } finally {
      await low.close();
      await high.close();
    }
  });

  test('a JSON-RPC error is an answer (no fail-over); u64 ids go out as unquoted numbers', async () => {
    assert.equal(rpcBody('rentMachine_getRentOrder', [new RawNumber('37')]), '{"jsonrpc":"2.0","id":1,"method":"rentMachine_getRentOrder","params":[37]}');
    assert.equal(rpcBody('x', [new RawNumber('18446744073709551615'), 'a']), '{"jsonrpc":"2.0","id":1,"method":"x","params":[18446744073709551615,"a"]}');
    assert.throws(() => new RawNumber('18446744073709551616'));
    assert.equal(normalizeEndpoint('httpinfo.dbcwallet.io:443'), 'https://httpinfo.dbcwallet.io/');
    assert.equal(normalizeEndpoint('httpinfo2.dbcwallet.io:7788'), 'https://httpinfo2.dbcwallet.io:7788/');
    assert.equal(normalizeEndpoint('http://127.0.0.1:9944'), 'http://127.0.0.1:9944/');
    const a = new FakeChain();
    const b = new FakeChain();
    const urls = [await a.listen(), await b.listen()];
    try {
      const rpc = new ChainRpc({ endpoints: urls });
      await assert.rejects(rpc.call('rentMachine_getRentOrder', [new RawNumber('5')]), /Something wrong/);
      assert.equal(a.callCount('rentMachine_getRentOrder') + b.callCount('rentMachine_getRentOrder'), 1);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('parseRentOrder reads camelCase and snake_case, Bytes as text or hex', () => {
    const hex = `0x${Buffer.from(MACHINE).toString('hex')}`;
    const o = parseRentOrder('3', { machineId: hex, renter: alice.address, rentEnd: '0x10', rentStatus: 'Renting', gpuNum: 1, gpuIndex: [2] });
    assert.deepEqual(o, { id: '3', machineId: MACHINE, renter: alice.address, rentStart: 0, rentEnd: 16, rentStatus: 'renting', gpuNum: 1, gpuIndex: [2] });
    const s = parseRentOrder('4', { machine_id: MACHINE, renter: bob.address, rent_end: 7, rent_status: 'waitingVerifying', gpu_num: 2, gpu_index: [0, 1] });
    assert.equal(s?.rentStatus, 'waitingVerifying');
    assert.equal(parseRentOrder('5', { renter: 7 }), null);
  });

  test('chain outage: the last verified state serves within the grace, then a clear refusal; sweeps never act on it', async () => {
    const w = await world({ outageGraceMs: 60_000 });
    try {
      w.chain.addOrder({ machineId: MACHINE, renter: alice.address, rentEnd: 1600, gpuNum: 1 });
      w.chain.addOrder({ machineId: MACHINE, renter: carol.address, rentEnd: 1010, gpuNum: 1 });
      const t0 = Date.now();
      assert.ok(await w.src.active(alice.address, t0));
      assert.ok(await w.src.active(carol.address, t0));
      assert.equal(await w.src.machineStatus(t0), 'rented');
      assert.equal((await w.src.known(t0)).length, 2);

      await chainCall(w.url, 'dev_setOffline', [true]);
      const r = await w.src.active(alice.address, t0 + 30_000);
      assert.ok(r, 'served from the last verified state');
      assert.equal(r.gpus, 1);
      assert.equal(await w.src.machineStatus(t0 + 30_000), 'rented');
      assert.equal(await w.src.active(bob.address, t0 + 30_000), null, 'bob was verified as not renting');
      await assert.rejects(w.src.known(t0 + 30_000), RentalUnavailableError, 'the sweep gets no stale answers');
      await assert.rejects(w.src.freshMachineStatus(t0 + 30_000), RentalUnavailableError);
      // the head is estimated from the block time during the outage: carol's order (10 blocks = 20 s) has ended
      assert.equal(await w.src.active(carol.address, t0 + 30_000), null);

      await assert.rejects(w.src.active(alice.address, t0 + 61_000), (err: unknown) => {
        assert.ok(err instanceof RentalUnavailableError);
        assert.match(err.message, /^chain unreachable for \d+ s \(outage grace 60 s\)$/);
        return true;
      });
      await assert.rejects(w.src.machineStatus(t0 + 61_000), RentalUnavailableError);

      await chainCall(w.url, 'dev_setOffline', [false]);
      assert.ok(await w.src.active(alice.address, t0 + 62_000), 'back once the chain answers');
    } finally {
      await w.chain.close();
    }
  });

  test('a chain never reached is unavailable at once; without timestamps the block time falls back and says so', async () => {
    const src = new ChainRentals({ machineId: MACHINE, rpc: { endpoints: [`http://127.0.0.1:${await freeTcpPort()}/`], timeoutMs: 1000 } });
    await assert.rejects(src.active(alice.address, Date.now()), /chain never reached/);
    const chain = new FakeChain({ block: 1 });
    const url = await chain.listen();
    try {
      const warned: unknown[] = [];
      const s2 = new ChainRentals({ machineId: MACHINE, rpc: { endpoints: [url] }, logger: { info() {}, warn: (o: unknown) => warned.push(o) } });
      assert.equal(await s2.blockTimeMs(), 6000);
      assert.equal(s2.describe().blockTimeSource, 'fallback');
      assert.equal(warned.length, 1);
      const fixed = new ChainRentals({ machineId: MACHINE, rpc: { endpoints: [url] }, blockTimeMs: 3000 });
      assert.equal(await fixed.blockTimeMs(), 3000);
    } finally {
      await chain.close();
    }
  });
});
