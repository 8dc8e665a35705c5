// The RentalSource contract, run against every implementation (in the style of js-libp2p's interface-compliance
// tests): one suite, rentalSourceSuite(name, setup), and one setup per source: the local registry over a fresh
// SQLite database, and the chain source against the fake DBC chain on loopback. The same suite drives the expiry
// sweep (rental/sweep.ts) over each source with a recording ExpiryTarget. A case a source cannot meet is skipped
// with the reason.
import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { identityFromSeed } from '../../src/auth/identity.js';
import { accountKeyHex, cryptoReady } from '../../src/auth/verify.js';
import { ChainRentals } from '../../src/rental/chain.js';
import { FakeChain } from '../../src/rental/fake-chain.js';
import { LocalRentals } from '../../src/rental/local.js';
import { RentalSweep, type ExpiryTarget, type SweptTask } from '../../src/rental/sweep.js';
import { RentalUnavailableError, type MachineStatus, type RentalSource } from '../../src/rental/types.js';
import { openDb } from '../../src/store/db.js';
import { quietLogger } from '../../src/util/logger.js';

await cryptoReady();

/** what the suite needs to drive one source */
export interface RentalSourceHarness {
  source: RentalSource;
  /** the time the source is asked at (unix ms); end() may move it */
  now(): number;
  /** the account rents `gpus` GPUs of this machine from now on, for a while */
  grant(account: string, gpus: number): Promise<void>;
  /** the account's rental reaches its end; the source still lists it (as ended) */
  end(account: string): Promise<void>;
  /** makes the source unable to answer, past any grace, at now(); a string: why the source cannot be unavailable */
  unavailable: (() => Promise<void>) | string;
  /** puts the account in a verify window of this machine; a string: why the source has no committees */
  committee: ((account: string) => Promise<void>) | string;
  teardown(): Promise<void>;
}

const STATUSES: readonly MachineStatus[] = ['verify', 'online', 'rented', 'unknown'];
const alice = identityFromSeed('11'.repeat(32)).address;
const bob = identityFromSeed('22'.repeat(32)).address;
const carol = identityFromSeed('33'.repeat(32)).address;
const sameAccount = (a: string, b: string) => (accountKeyHex(a) ?? a) === (accountKeyHex(b) ?? b);

/** the task side as the sweep sees it: VMs by owner, and every call the sweep made */
class RecordingTarget implements ExpiryTarget {
  readonly calls: string[] = [];
  constructor(readonly tasks: SweptTask[]) {}
  all(): SweptTask[] {
    return this.tasks;
  }
  isBusy(): boolean {
    return false;
  }
  remove(task: SweptTask): void {
    this.calls.push(`remove ${task.task_id}`);
  }
  closeForExpiry(account: string): void {
    this.calls.push(`close ${account}`);
  }
  deleteExpired(account: string, _nowMs: number, graceMs: number): void {
    this.calls.push(`deleteExpired ${account} ${graceMs}`);
  }
  clearExpiry(account: string): void {
    this.calls.push(`clear ${account}`);
  }
}

export function rentalSourceSuite(name: string, setup: () => Promise<RentalSourceHarness>): void {
  describe(`RentalSource contract: ${name}`, () => {
    let h: RentalSourceHarness;
    beforeEach(async () => {
      h = await setup();
    });
    afterEach(async () => {
      await h.teardown();
    });

    test('an account with an active rental gets it from active(), and known() lists it', async () => {
      await h.grant(alice, 2);
      const now = h.now();
      const r = await h.source.active(alice, now);
      assert.ok(r, 'active');
      assert.ok(sameAccount(r.account, alice));
      assert.equal(r.gpus, 2);
      assert.ok(r.untilMs > now, 'ends in the future');
      assert.notEqual(r.role, 'verifier');
      const known = await h.source.known(now);
      const mine = known.filter((k) => sameAccount(k.account, alice));
      assert.equal(mine.length, 1);
      assert.ok(mine[0]!.untilMs > now);
    });

    test('an unknown account, or one that is not an account at all, gets null', async () => {
      await h.grant(alice, 1);
      assert.equal(await h.source.active(bob, h.now()), null);
      assert.equal(await h.source.active('not-an-address', h.now()), null);
      assert.equal((await h.source.known(h.now())).filter((k) => sameAccount(k.account, bob)).length, 0);
    });

    test('after the end time active() is null; known() still lists the rental, with untilMs in the past', async () => {
      await h.grant(alice, 1);
      await h.grant(bob, 1);
      await h.end(alice);
      const now = h.now();
      assert.equal(await h.source.active(alice, now), null);
      assert.ok(await h.source.active(bob, now), 'the other rental is untouched');
      const ended = (await h.source.known(now)).filter((k) => sameAccount(k.account, alice));
      assert.equal(ended.length, 1);
      assert.ok(ended[0]!.untilMs <= now, `untilMs ${ended[0]!.untilMs} <= now ${now}`);
    });

    test('machineStatus() and freshMachineStatus() answer a MachineStatus: rented while rented', async () => {
      await h.grant(alice, 1);
      const status = await h.source.machineStatus(h.now());
      assert.ok(STATUSES.includes(status), status);
      assert.equal(status, 'rented');
      assert.equal(await h.source.freshMachineStatus(h.now()), 'rented');
    });

    test('verifier() of a non-committee account (or a malformed one) is null', async () => {
      await h.grant(alice, 1);
      assert.equal(await h.source.verifier(alice, h.now()), null);
      assert.equal(await h.source.verifier(carol, h.now()), null);
      assert.equal(await h.source.verifier('not-an-address', h.now()), null);
    });

    const committee = () => h.committee;
    test('a committee member inside its verify window gets a verifier Rental', async (t) => {
      const put = committee();
      if (typeof put === 'string') return t.skip(put);
      await put(carol);
      const r = await h.source.verifier(carol, h.now());
      assert.ok(r);
      assert.equal(r.role, 'verifier');
      assert.ok(sameAccount(r.account, carol));
      assert.ok(r.untilMs > h.now());
      assert.equal(await h.source.verifier(bob, h.now()), null, 'only the member');
    });

    test('unavailability surfaces as RentalUnavailableError, never as "no rental"', async (t) => {
      const make = h.unavailable;
      if (typeof make === 'string') return t.skip(make);
      await h.grant(alice, 1);
      assert.ok(await h.source.active(alice, h.now()));
      await make();
      const now = h.now();
      await assert.rejects(h.source.active(alice, now), RentalUnavailableError);
      await assert.rejects(h.source.known(now), RentalUnavailableError);
      await assert.rejects(h.source.machineStatus(now), RentalUnavailableError);
      await assert.rejects(h.source.freshMachineStatus(now), RentalUnavailableError);
    });

    test('the expiry sweep: ended renters are closed and their sessions end, active ones cleared; check VMs go', async () => {
      await h.grant(alice, 1);
      await h.grant(bob, 1);
      await h.end(alice);
      const target = new RecordingTarget([
        { task_id: 'A1', wallet: alice, status: 'running' },
        { task_id: 'B1', wallet: bob, status: 'running' },
        { task_id: 'vm_check_1700000000', wallet: carol, status: 'running' },
      ]);
      const ended: string[] = [];
      const sweep = new RentalSweep({
        source: h.source,
        target,
        sessions: { end: (a: string) => ended.push(a) },
        log: quietLogger,
        now: () => h.now(),
        policy: { sweepIntervalMs: 60_000, deleteGraceMs: 1234 },
      });
      await sweep.sweep();
      assert.deepEqual(target.calls.sort(), [`clear ${bob}`, `close ${alice}`, `deleteExpired ${alice} 1234`, 'remove vm_check_1700000000'].sort());
      assert.deepEqual(ended, [alice]);
    });

    test('the expiry sweep touches nothing while the source is unavailable', async (t) => {
      const make = h.unavailable;
      if (typeof make === 'string') return t.skip(make);
      await h.grant(alice, 1);
      assert.ok(await h.source.active(alice, h.now()));
      await make();
      const target = new RecordingTarget([
        { task_id: 'A1', wallet: alice, status: 'running' },
        { task_id: 'vm_check_1700000000', wallet: carol, status: 'running' },
      ]);
      const ended: string[] = [];
      const sweep = new RentalSweep({ source: h.source, target, sessions: { end: (a: string) => ended.push(a) }, log: quietLogger, now: () => h.now() });
      await sweep.sweep();
      assert.deepEqual(target.calls, []);
      assert.deepEqual(ended, []);
    });
  });
}

// --- the implementations ---------------------------------------------------------------------------------------

rentalSourceSuite('local registry (SQLite)', async () => {
  const dir = mkdtempSync(join(os.tmpdir(), 'dbc-rental-contract-'));
  const db = openDb(join(dir, 'node.db'));
  const source = new LocalRentals(db);
  const gpusOf = new Map<string, number>();
  return {
    source,
    now: () => Date.now(),
    async grant(account, gpus) {
      gpusOf.set(account, gpus);
      source.grant(account, gpus, Date.now() + 3600_000);
    },
    async end(account) {
      // the registry entry's end time is now behind us (as `dbc rental grant` with an end that has passed)
      source.grant(account, gpusOf.get(account) ?? 0, Date.now() - 1);
    },
    unavailable: 'the local registry is a read of the node database: it has no outage to surface',
    committee: 'the local registry has no committees',
    async teardown() {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

rentalSourceSuite('chain (fake DBC chain on loopback)', async () => {
  const MACHINE = 'a1'.repeat(32);
  const GRACE_MS = 1000;
  const chain = new FakeChain({ block: 1000, blockMs: 2000 });
  const url = await chain.listen();
  chain.setMachine(MACHINE, 'rented', 4);
  const source = new ChainRentals({ machineId: MACHINE, rpc: { endpoints: [url], timeoutMs: 1000 }, headTtlMs: 0, outageGraceMs: GRACE_MS });
  const orders = new Map<string, number>();
  let skew = 0;
  return {
    source,
    now: () => Date.now() + skew,
    async grant(account, gpus) {
      orders.set(account, chain.addOrder({ machineId: MACHINE, renter: account, rentEnd: chain.block + 600, gpuNum: gpus }));
    },
    async end(account) {
      // the head reaches the order's end; the order is still listed (a node that has not finalized the block yet)
      const o = chain.orders.get(orders.get(account)!)!;
      o.rentEnd = chain.block + 1;
      chain.block += 1;
    },
    async unavailable() {
      chain.offline = true;
      skew = GRACE_MS + 1000;
    },
    async committee(account) {
      chain.setCommittee(account, MACHINE, [chain.block - 10]);
      chain.setMachine(MACHINE, 'committeeVerifying');
    },
    async teardown() {
      await chain.close();
    },
  };
});
