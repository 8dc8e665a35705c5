// `dbc up --rentals chain` against a fake DBC chain: the chain decides who may use the machine. A committee member
// in its verify window gets a vm_check_<unix seconds> VM; the renter creates a VM; another wallet is refused; a chain
// outage is bridged for the grace time and then refused, without touching the VM; when the head passes rent_end the
// VM stops and, after the grace period, is deleted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { identityFromSeed } from '../../src/auth/identity.js';
import { FakeChain } from '../../src/rental/fake-chain.js';
import {
  cliPath,
  ensureTestImage,
  freeTcpPort,
  killQemuUnder,
  post,
  qemuPidsUnder,
  sessionBody,
  signedBody,
  sleep,
  waitFor,
  type DevnetJson,
} from '../helpers/devnet.js';
import { freeVncPort } from '../helpers/tasks.js';

const OUTAGE_GRACE_S = 4;
const DELETE_GRACE_S = 8;
const bobSeed = `0x${'22'.repeat(32)}`;
const carolSeed = `0x${'33'.repeat(32)}`;
const carol = identityFromSeed(carolSeed);

describe('chain rentals through dbc up', { timeout: 400_000 }, () => {
  let chain: FakeChain;
  let rpc: string;
  let dataDir: string;
  let proc: ChildProcess | undefined;
  let out = '';
  let d: DevnetJson;
  let M: string;

  const fail = (r: { body: { errcode: number; message: unknown } }, text: string) =>
    assert.deepEqual(r.body, { errcode: -3, message: `check authority failed: ${text}` });
  const vm = async () => ({
    image_name: d.image,
    ssh_port: String(await freeTcpPort()),
    vnc_port: String(await freeVncPort()),
    cpu_cores: '1',
    mem_size: '1',
    disk_size: '1',
  });
  // the node reads the head at most once a second and caches answers per block: let it see a chain change
  const settle = () => sleep(1200);
  const detail = async (taskId: string, seed: string) => post(d.api, `tasks/${taskId}`, signedBody(M, seed));

  before(async () => {
    const image = ensureTestImage();
    chain = new FakeChain({ block: 1000, blockMs: 6000 });
    rpc = await chain.listen();
    dataDir = mkdtempSync(join(os.tmpdir(), 'dbc-e2e-chain-'));
    const args = [
      cliPath,
      'up',
      '--data-dir',
      dataDir,
      '--http-port',
      '0',
      '--image',
      image,
      '--shutdown-timeout',
      '20',
      '--expiry-sweep',
      '1',
      '--delete-grace',
      String(DELETE_GRACE_S),
      '--rentals',
      'chain',
      '--chain-rpc',
      rpc,
      '--chain-outage-grace',
      String(OUTAGE_GRACE_S),
    ];
    proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DBC_LOG_LEVEL: 'debug' } });
    proc.stdout!.on('data', (x) => (out += x));
    proc.stderr!.on('data', (x) => (out += x));
    const file = join(dataDir, 'devnet.json');
    d = await waitFor(
      'devnet.json',
      () => {
        if (proc!.exitCode !== null) throw new Error(`dbc up exited: ${out}`);
        return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as DevnetJson) : undefined;
      },
      60_000,
      100,
    );
    M = d.node_id;
    assert.equal((d as DevnetJson & { rentals?: string }).rentals, 'chain');
  });

  after(async () => {
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      await new Promise((r) => proc!.once('exit', r));
    }
    if (dataDir) {
      killQemuUnder(dataDir);
      rmSync(dataDir, { recursive: true, force: true });
    }
    await chain?.close();
  });

  test('an unregistered machine refuses everyone; open routes still answer', async () => {
    fail(await post(d.api, 'tasks', signedBody(M, d.renter.seed)), 'query machine_status failed');
    assert.equal((await post(d.api, 'mining_nodes', { peer_nodes_list: [M], additional: {} })).body.errcode, 0);
  });

  test('committee window: inside it a verifier creates the vm_check_<unix seconds> VM; outside it is refused', async () => {
    chain.setMachine(M, 'committeeVerifying', 0);
    chain.setCommittee(carol.address, M, [chain.block - 1, chain.block + 100_000, chain.block + 200_000]);
    await settle();
    fail(await post(d.api, 'tasks', signedBody(M, bobSeed)), 'not in verify time');
    const t0 = Math.floor(Date.now() / 1000);
    const r = await post(d.api, 'tasks/start', signedBody(M, carolSeed, await vm()));
    assert.equal(r.body.errcode, 0, r.text);
    const taskId = r.body.message.task_id as string;
    assert.match(taskId, /^vm_check_\d+$/);
    assert.ok(Math.abs(Number(taskId.slice('vm_check_'.length)) - t0) <= 5);
    const dt = await detail(taskId, carolSeed);
    assert.equal(dt.body.errcode, 0, dt.text);
    assert.equal(dt.body.message.cpu_cores, os.cpus().length, 'the whole machine');

    // the committee member's windows close (the head moves past them): refused
    chain.setCommittee(carol.address, M, [chain.block - 100_000]);
    await settle();
    fail(await post(d.api, 'tasks', signedBody(M, carolSeed)), 'not in verify time');
  });

  let taskId = '';
  let sessionId = '';
  let rentEnd = 0;

  test('renting: the renter creates a VM (the committee VM goes); another wallet is refused', async () => {
    rentEnd = chain.block + 100_000;
    chain.addOrder({ machineId: M, renter: d.renter.wallet, rentEnd, gpuNum: 0 });
    chain.setMachine(M, 'rented');
    await settle();
    const r = await post(d.api, 'tasks/start', signedBody(M, d.renter.seed, await vm(), { rent_order: 'undefined' }));
    assert.equal(r.body.errcode, 0, r.text);
    taskId = r.body.message.task_id;
    fail(await post(d.api, 'tasks', signedBody(M, bobSeed)), 'wallet not rented');
    fail(await post(d.api, 'tasks/start', signedBody(M, bobSeed, await vm())), 'wallet not rented');
    fail(await post(d.api, 'tasks', signedBody(M, carolSeed)), 'wallet not rented');
    await waitFor('committee VM deleted', () => !readdirNames(join(dataDir, 'vms')).some((n) => n.startsWith('vm_check_')), 30_000);
    await waitFor(
      'VM running',
      async () => {
        const x = await detail(taskId, d.renter.seed);
        return x.body.message?.status === 'running' ? true : undefined;
      },
      180_000,
      500,
    );
    sessionId = (await post(d.api, 'mining_nodes/session_id', signedBody(M, d.renter.seed))).body.message.session_id;
    assert.equal((await post(d.api, 'tasks', sessionBody(M, sessionId, d.renter.seed))).body.errcode, 0);
  });

  test('chain outage: served from the last verified state within the grace, refused after it; the VM keeps running', async () => {
    assert.equal((await post(d.api, 'tasks', signedBody(M, d.renter.seed))).body.errcode, 0);
    chain.offline = true;
    const within = await post(d.api, 'tasks', signedBody(M, d.renter.seed));
    assert.equal(within.body.errcode, 0, within.text);
    await sleep(OUTAGE_GRACE_S * 1000 + 1500);
    const past = await post(d.api, 'tasks', signedBody(M, d.renter.seed));
    assert.equal(past.body.errcode, -3);
    assert.match(past.body.message, /^check authority failed: query machine_status failed: chain unreachable for \d+ s \(outage grace 4 s\)$/);
    await sleep(2000); // two sweeps ran meanwhile
    assert.ok(qemuPidsUnder(join(dataDir, 'vms', taskId)).length > 0, 'never stopped because the chain could not be reached');
    chain.offline = false;
    await settle();
    const back = await detail(taskId, d.renter.seed);
    assert.equal(back.body.message.status, 'running', back.text);
  });

  test('rent_end passes: the VM stops and the session ends; after the grace the VM is deleted', async () => {
    chain.setBlock(rentEnd); // the chain ends the order in this block
    await waitFor('VM stopped', () => qemuPidsUnder(join(dataDir, 'vms', taskId)).length === 0, 30_000);
    fail(await post(d.api, 'tasks', signedBody(M, d.renter.seed)), 'machine is not be rented');
    fail(await post(d.api, 'tasks', sessionBody(M, sessionId, d.renter.seed)), 'session_id is invalid'); // ended with the rental
    assert.ok(existsSync(join(dataDir, 'vms', taskId)), 'kept during the grace period');
    await waitFor('VM deleted after the grace period', () => !existsSync(join(dataDir, 'vms', taskId)), 60_000);
    // renting again: access is back, the session id was ended with the rental, the old VM is gone
    chain.addOrder({ machineId: M, renter: d.renter.wallet, rentEnd: chain.block + 1000 });
    await settle();
    const list = await post(d.api, 'tasks', signedBody(M, d.renter.seed));
    assert.deepEqual(list.body, { errcode: 0, message: [] });
    fail(await post(d.api, 'tasks', sessionBody(M, sessionId, d.renter.seed)), 'session_id is invalid');
  });
});

function readdirNames(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
