// The P2P network as separate processes on loopback: `dbc seed`, `dbc client` and `dbc node`s, driven through the
// client's HTTP API like a renter would.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { identityFromSeed } from '../../src/auth/identity.js';
import { cliPath, ensureTestImage, freeTcpPort, post, qemuPidsUnder, repoRoot, signedBody, sshExec, waitFor, type Devnet } from '../helpers/devnet.js';
import { dialAddr, LOOPBACK_LISTEN, seedArgs, startRole, type RoleProc } from '../helpers/p2p.js';
import { freeVncPort, waitStatus } from '../helpers/tasks.js';

const renterSeed = `0x${randomBytes(32).toString('hex')}`;
const renter = identityFromSeed(renterSeed);

function grant(node: RoleProc): void {
  execFileSync(process.execPath, [cliPath, 'rental', 'grant', '--data-dir', node.dataDir, '--wallet', renter.address, '--days', '1'], { stdio: 'pipe' });
}

/** what test/helpers/tasks.ts needs to poll a task of `node` through `client` */
function via(client: RoleProc, node: RoleProc, ...others: RoleProc[]): Devnet {
  return {
    api: client.info.api!,
    node_id: node.info.node_id!,
    renter: { wallet: renter.address, seed: renterSeed },
    output: () => [client, node, ...others].map((r) => `--- ${r.role} ${r.dataDir}\n${r.output().slice(-1500)}`).join('\n'),
  } as unknown as Devnet;
}

const nodeArgs = (name: string, extra: string[] = []) => [
  '--listen',
  LOOPBACK_LISTEN,
  '--host',
  '127.0.0.1',
  '--name',
  name,
  '--shutdown-timeout',
  '10',
  ...extra,
];

describe('seed, client and two GPU nodes as four processes', { timeout: 600_000 }, () => {
  let seed: RoleProc;
  let client: RoleProc;
  let n1: RoleProc;
  let n2: RoleProc;

  before(async () => {
    const image = ensureTestImage();
    seed = await startRole('seed', ['--listen', LOOPBACK_LISTEN]);
    [n1, n2] = await Promise.all([
      startRole('node', nodeArgs('gpu-1', ['--image', image, ...seedArgs([seed])])),
      startRole('node', nodeArgs('gpu-2', ['--image', image, ...seedArgs([seed])])),
    ]);
    client = await startRole('client', ['--listen', LOOPBACK_LISTEN, '--http-port', '0', ...seedArgs([seed])]);
    // rentals are granted from another process while the nodes run
    grant(n1);
    grant(n2);
  });

  after(async () => {
    await Promise.all([client, n1, n2, seed].map((r) => r?.destroy()));
  });

  test('mining_nodes with an empty peer list shows both GPU nodes; /peers/active shows the connected peers', async () => {
    const list = await waitFor(
      'both nodes known to the client',
      async () => {
        const r = await post(client.info.api!, 'mining_nodes', { peer_nodes_list: [], additional: {} });
        const nodes = r.body.message.mining_nodes as Array<{ node_id: string; name: string; version: string }>;
        return nodes.length === 2 ? nodes : undefined;
      },
      30_000,
      200,
    );
    assert.deepEqual(
      list.map((n) => [n.node_id, n.name, n.version]).sort(),
      [
        [n1.info.node_id, 'gpu-1', '0.4.1.8'],
        [n2.info.node_id, 'gpu-2', '0.4.1.8'],
      ].sort(),
    );
    const active = await post(client.info.api!, 'peers/active', {});
    assert.equal(active.body.errcode, 0);
    const peers = active.body.message.peer_nodes_list as Array<{ node_id: string; addr: string }>;
    assert.ok(
      peers.some((p) => p.node_id === seed.info.peer_id),
      active.text,
    );
    for (const p of peers) assert.match(p.addr, /^127\.0\.0\.1:\d+$/);
    const global = await post(client.info.api!, 'peers/global', {});
    assert.equal(global.body.errcode, 0);
    assert.ok((global.body.message.peer_nodes_list as unknown[]).length >= 1);
  });

  test('a signed tasks/start through the client lands on the right node and boots a VM there; the other node has nothing', async () => {
    const sshPort = await freeTcpPort();
    const vncPort = await freeVncPort();
    const r = await post(
      client.info.api!,
      'tasks/start',
      signedBody(n1.info.node_id!, renterSeed, {
        image_name: 'dbc-test.qcow2',
        ssh_port: String(sshPort),
        vnc_port: String(vncPort),
        cpu_cores: '1',
        mem_size: '1',
        disk_size: '1',
      }),
    );
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.errcode, 0, r.text);
    assert.equal(r.body.message.status, 'creating');
    const taskId = r.body.message.task_id as string;

    const detail = await waitStatus(via(client, n1, seed), taskId, 'running', 180_000);
    assert.equal(detail.ssh_port, String(sshPort));
    assert.equal(qemuPidsUnder(n1.dataDir).length, 1, 'one QEMU under the first node');
    assert.equal(qemuPidsUnder(n2.dataDir).length, 0, 'no QEMU under the second node');
    const out = await waitFor('ssh into the guest', () => sshExec(detail.ssh_ip, sshPort, 'dbc', detail.login_password, 'id -un'), 180_000, 2000);
    assert.match(out, /^dbc$/m);

    const other = await post(client.info.api!, 'tasks', signedBody(n2.info.node_id!, renterSeed));
    assert.equal(other.body.errcode, 0, other.text);
    assert.deepEqual(other.body.message, []);
    const missing = await post(client.info.api!, `tasks/${taskId}`, signedBody(n2.info.node_id!, renterSeed));
    assert.equal(missing.body.message, 'task_id not exist', missing.text);
    const mine = await post(client.info.api!, 'tasks', signedBody(n1.info.node_id!, renterSeed));
    assert.deepEqual(
      (mine.body.message as Array<{ task_id: string }>).map((t) => t.task_id),
      [taskId],
    );
  });

  test('killing the seed does not break client <-> node traffic already discovered', async () => {
    await seed.kill9();
    for (let i = 0; i < 5; i++) {
      for (const n of [n1, n2]) {
        const r = await post(client.info.api!, 'tasks', signedBody(n.info.node_id!, renterSeed));
        assert.equal(r.body.errcode, 0, r.text);
      }
    }
    const list = await post(client.info.api!, 'mining_nodes', { peer_nodes_list: [], additional: {} });
    assert.equal(list.body.message.mining_nodes.length, 2);
  });
});

describe('node restart, forged bindings, unknown node ids', { timeout: 300_000 }, () => {
  let seed: RoleProc;
  let client: RoleProc;
  /** the same gateway with requests multiplexed on long-lived streams (the default); `client` uses one stream per request */
  let muxClient: RoleProc;
  let n1: RoleProc;
  let forger: ChildProcess | undefined;
  let forgerOut = '';

  before(async () => {
    seed = await startRole('seed', ['--listen', LOOPBACK_LISTEN]);
    const port = await freeTcpPort();
    n1 = await startRole('node', ['--listen', `/ip4/127.0.0.1/tcp/${port}`, '--host', '127.0.0.1', '--name', 'mover', ...seedArgs([seed])]);
    // default settings: the seeds' lists are fetched every 5 s, unknown ids looked for 2 s; one client per request mode
    client = await startRole('client', ['--listen', LOOPBACK_LISTEN, '--http-port', '0', '--rpc-mode', 'stream', ...seedArgs([seed])]);
    muxClient = await startRole('client', ['--listen', LOOPBACK_LISTEN, '--http-port', '0', '--rpc-mode', 'mux', ...seedArgs([seed])]);
    grant(n1);
    for (const c of [client, muxClient]) {
      await waitFor(
        'node known',
        async () => {
          const r = await post(c.info.api!, 'tasks', signedBody(n1.info.node_id!, renterSeed));
          return r.body.errcode === 0;
        },
        30_000,
        200,
      );
    }
  });

  after(async () => {
    forger?.kill('SIGKILL');
    await Promise.all([client, muxClient, n1, seed].map((r) => r?.destroy()));
  });

  test('an unknown node_id answers quickly with create node request failed', async () => {
    for (let i = 0; i < 3; i++) {
      const t0 = Date.now();
      const r = await post(client.info.api!, 'tasks', signedBody(randomBytes(32).toString('hex'), renterSeed));
      const ms = Date.now() - t0;
      assert.equal(r.status, 400);
      assert.deepEqual(r.body, { errcode: -32701, message: 'create node request failed' });
      assert.ok(ms < 3000, `answered in ${ms} ms`);
    }
  });

  test('a node restarted on a new port is reachable again within 30 s; while it is down requests fail fast', async () => {
    for (const c of [client, muxClient]) {
      const ok = await post(c.info.api!, 'mining_nodes', { peer_nodes_list: [n1.info.node_id], additional: {} });
      assert.equal(ok.body.errcode, 0, ok.text);
    }
    const oldAddr = dialAddr(n1);
    await n1.stop();

    for (const c of [client, muxClient]) {
      const t0 = Date.now();
      const down = await post(c.info.api!, 'tasks', signedBody(n1.info.node_id!, renterSeed));
      assert.equal(down.status, 400, down.text);
      assert.deepEqual(down.body, { errcode: -32701, message: 'create node request failed' });
      assert.ok(Date.now() - t0 < 15_000, `a node that went away answered in ${Date.now() - t0} ms`);
    }

    const port = await freeTcpPort();
    await n1.restart(['--listen', `/ip4/127.0.0.1/tcp/${port}`, '--host', '127.0.0.1', '--name', 'mover', ...seedArgs([seed])]);
    assert.notEqual(dialAddr(n1), oldAddr);
    const restarted = Date.now();
    for (const c of [client, muxClient]) {
      await waitFor(
        'requests succeed again',
        async () => {
          const r = await post(c.info.api!, 'tasks', signedBody(n1.info.node_id!, renterSeed));
          return r.body.errcode === 0 ? r : undefined;
        },
        30_000,
        250,
      );
      const ms = Date.now() - restarted;
      assert.ok(ms < 30_000, `picked up after ${ms} ms`);
      console.log(`# node restart picked up by the ${c === client ? 'stream' : 'mux'} client after ${ms} ms`);
    }
  });

  test('a forged binding is refused everywhere and its peer is never dialled', async () => {
    const script = join(repoRoot, 'dist', 'test', 'helpers', 'p2p-forger.js');
    forger = spawn(process.execPath, [script, dialAddr(seed), dialAddr(client), n1.info.node_id!], { stdio: ['ignore', 'pipe', 'pipe'] });
    forger.stdout!.on('data', (d) => (forgerOut += d));
    forger.stderr!.on('data', (d) => (forgerOut += d));
    const report = await waitFor(
      'forger done',
      () => {
        const line = forgerOut.split('\n').find((l) => l.startsWith('{"ghost"'));
        return line ? (JSON.parse(line) as { ghost: string; peer_id: string; verdicts: Record<string, string> }) : undefined;
      },
      30_000,
      100,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${forgerOut}`);
    });
    for (const k of ['seed:victim', 'seed:ghost', 'client:victim', 'client:ghost']) {
      assert.match(report.verdicts[k]!, /^rejected: bad signature/, `${k}: ${report.verdicts[k]}`);
    }

    // the ghost is unknown: answered quickly, nobody dialled
    const t0 = Date.now();
    const ghost = await post(client.info.api!, 'tasks', signedBody(report.ghost, renterSeed));
    assert.deepEqual(ghost.body, { errcode: -32701, message: 'create node request failed' });
    assert.ok(Date.now() - t0 < 3000);
    // the victim keeps its genuine binding: requests still reach the real node
    for (let i = 0; i < 3; i++) {
      const r = await post(client.info.api!, 'mining_nodes', { peer_nodes_list: [n1.info.node_id], additional: {} });
      assert.equal(r.body.errcode, 0, r.text);
    }
    const known = await post(client.info.api!, 'mining_nodes', { peer_nodes_list: [], additional: {} });
    const ids = (known.body.message.mining_nodes as Array<{ node_id: string; name: string }>).map((n) => `${n.node_id}:${n.name}`);
    assert.deepEqual(ids, [`${n1.info.node_id}:mover`]);
    // and let the next list refresh and DHT traffic pass, then ask the forger what it received
    await new Promise((r) => setTimeout(r, 6000));
    const again = await post(client.info.api!, 'tasks', signedBody(report.ghost, renterSeed));
    assert.equal(again.body.errcode, -32701);
    forger.kill('SIGTERM');
    await new Promise<void>((r) => (forger!.exitCode !== null ? r() : forger!.once('exit', () => r())));
    const last = forgerOut
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('{"rpc_streams"'))
      .pop();
    assert.deepEqual(JSON.parse(last ?? '{"rpc_streams":0}'), { rpc_streams: 0 }, forgerOut);
  });
});
