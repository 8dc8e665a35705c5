// The GPU node with chain rentals (fake chain, fake hypervisor): the original's check_authority state machine and
// texts, committee check VMs, expiry as the block height advances, and the chain outage grace.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { createBase58Id } from '../../src/auth/base58.js';
import { identityFromSeed } from '../../src/auth/identity.js';
import { multisigAccount } from '../../src/auth/multisig.js';
import { cryptoReady } from '../../src/auth/verify.js';
import { startGpuNode, type RunningNode } from '../../src/node/bootstrap.js';
import type { NodeReply, RouteId } from '../../src/protocol/types.js';
import { ChainRentals } from '../../src/rental/chain.js';
import { FakeChain } from '../../src/rental/fake-chain.js';
import { FakeHypervisor } from '../helpers/fake-hypervisor.js';
import { PINGING_GUEST } from '../helpers/task-services.js';
import { freeTcpPort, sleep, waitFor } from '../helpers/devnet.js';
import { freeVncPort } from '../helpers/tasks.js';

await cryptoReady();

const quiet = { info() {}, warn() {}, error() {}, debug() {} };
type Key = ReturnType<typeof identityFromSeed>;
const alice = identityFromSeed('11'.repeat(32));
const bob = identityFromSeed('22'.repeat(32));
const carol = identityFromSeed('33'.repeat(32));
const dave = identityFromSeed('44'.repeat(32));
const erin = identityFromSeed('55'.repeat(32));

function wallet(key: Key) {
  const nonce = createBase58Id();
  return { wallet: key.address, nonce, sign: `0x${key.sign(nonce)}` };
}
function multisig(keys: Key[], signers: Key[], threshold: number) {
  return {
    multisig_accounts: {
      wallets: keys.map((k) => k.address),
      threshold: String(threshold),
      signs: signers.map((k) => wallet(k)),
    },
  };
}

describe('GPU node with chain rentals', { timeout: 120_000 }, () => {
  let dir: string;
  let chain: FakeChain;
  let hv: FakeHypervisor;
  let running: RunningNode;
  let M: string;
  const GRACE_MS = 1000;

  const call = (
    route: RouteId,
    auth: Record<string, unknown>,
    additional: Record<string, unknown> = {},
    params: Record<string, string> = {},
  ): Promise<NodeReply> => running.node.handle({ route, params, query: {}, body: { peer_nodes_list: [M], additional, ...auth } });
  const refused = async (p: Promise<NodeReply>, text: string) => assert.deepEqual(await p, { errcode: -3, message: `check authority failed: ${text}` });
  const vmParams = async () => ({
    image_name: 'base.qcow2',
    ssh_port: String(await freeTcpPort()),
    vnc_port: String(await freeVncPort()),
    cpu_cores: '1',
    mem_size: '1',
    disk_size: '1',
  });

  before(async () => {
    dir = mkdtempSync(join(os.tmpdir(), 'dbc-chain-node-'));
    mkdirSync(join(dir, 'images'), { recursive: true });
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', join(dir, 'images', 'base.qcow2'), '16M']);
    chain = new FakeChain({ block: 1000, blockMs: 6000 });
    const url = await chain.listen();
    hv = new FakeHypervisor({ guest: PINGING_GUEST });
    running = await startGpuNode({
      dataDir: dir,
      publicHost: '127.0.0.1',
      forwardHost: '127.0.0.1',
      vncListen: '127.0.0.1',
      logger: quiet,
      hypervisor: hv,
      // the fake guest has an agent and no SSH server: its answer is enough
      agentGraceMs: 0,
      expiry: { sweepIntervalMs: 3600_000, deleteGraceMs: 1500 },
      rentals: ({ nodeId }) => new ChainRentals({ machineId: nodeId, rpc: { endpoints: [url] }, headTtlMs: 0, outageGraceMs: GRACE_MS }),
    });
    M = running.identity.nodeId;
  });
  after(async () => {
    await running?.close();
    await chain?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('Online: nobody may use the machine; unknown status or an unregistered machine: query machine_status failed', async () => {
    await refused(call('tasks.list', wallet(alice)), 'query machine_status failed');
    chain.setMachine(M, 'online', 0);
    await refused(call('tasks.list', wallet(alice)), 'machine is not be rented');
    chain.setMachine(M, { stakerReportOffline: [1000, 'x'] });
    await refused(call('tasks.list', wallet(alice)), 'query machine_status failed');
    // open routes do not ask the chain
    assert.equal((await call('mining_nodes.info', {})).errcode, 0);
  });

  test('Verify: a committee member in its window creates only the full-machine vm_check_<unix seconds> VM', async () => {
    chain.setMachine(M, 'committeeVerifying');
    chain.setCommittee(carol.address, M, [chain.block - 5, chain.block + 50_000, chain.block + 90_000]);
    chain.setCommittee(dave.address, M, [chain.block - 10_000, chain.block - 9_000, chain.block - 8_000]); // windows over
    await refused(call('tasks.list', wallet(dave)), 'not in verify time');
    await refused(call('tasks.list', wallet(alice)), 'not in verify time');
    assert.deepEqual(await call('tasks.list', wallet(carol)), { errcode: 0, message: [] });
    assert.deepEqual(await call('mining_nodes.session_id', wallet(carol)), { errcode: -3, message: 'no session id' });

    const before = Math.floor(Date.now() / 1000);
    const r = await call('tasks.create', wallet(carol), { ...(await vmParams()), gpu_count: '0', cpu_cores: '1', mem_size: '1' });
    assert.equal(r.errcode, 0, JSON.stringify(r));
    const taskId = (r.message as { task_id: string }).task_id;
    assert.match(taskId, /^vm_check_\d+$/);
    assert.ok(Number(taskId.slice(9)) >= before && Number(taskId.slice(9)) <= before + 5);
    await running.tasks.idle();
    const detail = await call('tasks.detail', wallet(carol), {}, { task_id: taskId });
    const d = detail.message as { status: string; cpu_cores: number; mem_size: string; gpu_count: number; last_error?: string };
    assert.equal(d.cpu_cores, os.cpus().length, 'every core');
    assert.equal(d.gpu_count, 0, 'every GPU (none here)');
    assert.ok(Number.parseInt(d.mem_size, 10) >= 1 && Number.parseInt(d.mem_size, 10) <= Math.floor(os.totalmem() / 1024 ** 3), 'the free memory');
    // the guest hostname is made from the vm_check_ task id
    assert.equal(d.status, 'running', d.last_error);
    assert.ok(hv.vms.has(taskId));

    // sessions belong to renters
    const sid = running.node.ctx.auth.sessions.getOrCreate(carol.address);
    await refused(call('tasks.list', { session_id: sid, session_id_sign: `0x${carol.sign(sid)}` }), 'nonce check failed');
    running.node.ctx.auth.sessions.end(carol.address);
  });

  test('Rented: committee VMs are deleted; renting, waitingVerifying and multisig renters are in, others are not', async () => {
    const rentEnd = chain.block + 5000;
    const aliceOrder = chain.addOrder({ machineId: M, renter: alice.address, rentEnd, gpuNum: 0 });
    chain.setMachine(M, 'rented');
    assert.deepEqual(await call('tasks.list', wallet(alice)), { errcode: 0, message: [] });
    await waitFor(
      'check VM deleted',
      async () => {
        await running.tasks.idle();
        return running.tasks.all().length === 0;
      },
      10_000,
    );
    assert.equal(hv.vms.size, 0);
    await refused(call('tasks.list', wallet(carol)), 'wallet not rented');

    // rent_order forms
    assert.equal((await call('tasks.list', { ...wallet(alice), rent_order: String(aliceOrder) })).errcode, 0);
    assert.equal((await call('tasks.list', { ...wallet(alice), rent_order: 'undefined' })).errcode, 0);
    assert.equal((await call('tasks.list', { ...wallet(alice), rent_order: '' })).errcode, 0);
    // a session from the renter's wallet
    const s = await call('mining_nodes.session_id', wallet(alice));
    const sid = (s.message as { session_id: string }).session_id;
    assert.equal((await call('tasks.list', { session_id: sid, session_id_sign: `0x${alice.sign(sid)}` })).errcode, 0);

    const bobOrder = chain.addOrder({ machineId: M, renter: bob.address, rentEnd, rentStatus: 'waitingVerifying' });
    assert.equal((await call('tasks.list', wallet(bob))).errcode, 0, 'waitingVerifying counts');
    await refused(call('tasks.list', { ...wallet(bob), rent_order: String(aliceOrder) }), 'wallet not rented');
    chain.removeOrder(bobOrder);
    await refused(call('tasks.list', wallet(bob)), 'wallet not rented');

    const members = [carol, dave, erin];
    chain.addOrder({
      machineId: M,
      renter: multisigAccount(
        members.map((k) => k.address),
        2,
      ),
      rentEnd,
    });
    assert.equal((await call('tasks.list', multisig(members, [dave, erin], 2))).errcode, 0, 'multisig renter');
    await refused(call('tasks.list', wallet(dave)), 'wallet not rented');
  });

  test('expiry: past rent_end the VM stops and the session ends; after the grace the VM is deleted', async () => {
    const order = chain.addOrder({ machineId: M, renter: erin.address, rentEnd: chain.block + 10, gpuNum: 0 });
    const r = await call('tasks.create', wallet(erin), await vmParams());
    assert.equal(r.errcode, 0, JSON.stringify(r));
    const taskId = (r.message as { task_id: string }).task_id;
    await running.tasks.idle();
    assert.ok(hv.vms.has(taskId));
    const detail = await call('tasks.detail', wallet(erin), {}, { task_id: taskId });
    assert.equal((detail.message as { rent_order: string }).rent_order, String(order), 'the VM records its order');
    const sid = ((await call('mining_nodes.session_id', wallet(erin))).message as { session_id: string }).session_id;

    chain.setBlock(chain.block + 5);
    await running.node.sweepRentals();
    await running.tasks.idle();
    assert.ok(hv.vms.has(taskId), 'still rented');

    chain.setBlock(chain.block + 5); // reaches rentEnd: the chain ends the order
    await running.node.sweepRentals();
    await running.tasks.idle();
    assert.ok(!hv.vms.has(taskId), 'stopped');
    assert.equal(running.tasks.all().find((t) => t.task_id === taskId)?.status, 'closed');
    await refused(call('tasks.list', { session_id: sid, session_id_sign: `0x${erin.sign(sid)}` }), 'session_id is invalid');
    await refused(call('tasks.list', wallet(erin)), 'wallet not rented');

    await sleep(1600);
    await running.node.sweepRentals();
    await running.tasks.idle();
    assert.equal(
      running.tasks.all().find((t) => t.task_id === taskId),
      undefined,
      'deleted after the grace',
    );
  });

  test('chain outage: within the grace the last verified state serves and nothing stops; past it a clear refusal', async () => {
    chain.addOrder({ machineId: M, renter: bob.address, rentEnd: chain.block + 5000, gpuNum: 0 });
    const r = await call('tasks.create', wallet(bob), await vmParams());
    assert.equal(r.errcode, 0, JSON.stringify(r));
    const taskId = (r.message as { task_id: string }).task_id;
    await running.tasks.idle();
    assert.equal((await call('tasks.list', wallet(bob))).errcode, 0);

    chain.offline = true;
    assert.equal((await call('tasks.list', wallet(bob))).errcode, 0, 'served from the last verified state');
    await refused(call('tasks.list', wallet(carol)), 'wallet not rented');
    await running.node.sweepRentals();
    await running.tasks.idle();
    assert.ok(hv.vms.has(taskId));

    await sleep(GRACE_MS + 300);
    const past = await call('tasks.list', wallet(bob));
    assert.equal(past.errcode, -3);
    assert.match(String(past.message), /^check authority failed: query machine_status failed: chain unreachable for \d+ s \(outage grace 1 s\)$/);
    await running.node.sweepRentals();
    await running.tasks.idle();
    assert.ok(hv.vms.has(taskId), 'never stopped for lack of an answer');
    assert.equal(running.tasks.all().find((t) => t.task_id === taskId)?.status, 'running');

    chain.offline = false;
    assert.equal((await call('tasks.list', wallet(bob))).errcode, 0);
  });
});
