// Live events and consoles through `dbc up`, as a renter's browser or CLI uses them: an events ticket, Server-Sent
// Events that show a VM's status turn running without polling, Last-Event-ID resume, the serial console over a
// websocket (login prompt, log in, uname -a; two viewers at once), the VNC display over a websocket (an RFB
// server answers), operations/<id>/wait; and the attacks: a forged or reused ticket, renter B on A's console and
// events, a ticket of one kind on another route.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { identityFromSeed } from '../../src/auth/identity.js';
import { cliPath, freeTcpPort, post, signedBody, startDevnet, waitFor, type Devnet } from '../helpers/devnet.js';
import { closeAllWebSockets, ConsoleText, SHELL_PROMPT, sse, wsOpen, type WsRefusal } from '../helpers/streams.js';
import { freeVncPort, taskDetail, waitStatus } from '../helpers/tasks.js';

describe('events and consoles through dbc up', { timeout: 600_000 }, () => {
  let d: Devnet;
  let seedB = '';
  let taskId = '';
  let createOp = '';
  const A = (additional: Record<string, unknown> = {}) => signedBody(d.node_id, d.renter.seed, additional);
  const B = (additional: Record<string, unknown> = {}) => signedBody(d.node_id, seedB, additional);
  const wsUrl = (path: string) => `${d.api.replace(/^http/, 'ws')}${path}`;

  async function ticket(path: string, body: unknown): Promise<{ ticket: string; url: string; password?: string }> {
    const r = await post(d.api, path, body);
    assert.equal(r.body.errcode, 0, r.text);
    return r.body.message;
  }

  before(async () => {
    d = await startDevnet();
    seedB = `0x${randomBytes(32).toString('hex')}`;
    execFileSync(process.execPath, [cliPath, 'rental', 'grant', '--data-dir', d.dataDir, '--wallet', identityFromSeed(seedB).address, '--days', '1']);
  });
  after(async () => {
    closeAllWebSockets();
    await d?.destroy();
  });

  test('events: a VM created after subscribing is seen creating, then running, with its operation, without polling', async () => {
    const t = await ticket('events/ticket', A());
    assert.match(t.url, /^\/api\/v1\/events\?ticket=/);
    const stream = await sse(`${d.api}${t.url}`);
    assert.equal(stream.status, 200);
    const bStream = await sse(`${d.api}${(await ticket('events/ticket', B())).url}`);
    const r = await post(
      d.api,
      'tasks/start',
      A({ image_name: d.image, ssh_port: String(await freeTcpPort()), vnc_port: String(await freeVncPort()), cpu_cores: '1', mem_size: '1', disk_size: '1' }),
    );
    assert.equal(r.body.errcode, 0, r.text);
    taskId = r.body.message.task_id;
    createOp = String(r.body.operation_id);
    const t0 = Date.now();
    const running = await stream.next(
      (e) => e.data.type === 'task.status' && e.data.task_id === taskId && e.data.status === 'running',
      180_000,
      'running by event',
    );
    // the event came when the status changed: the detail says running too
    assert.equal((await taskDetail(d, taskId)).status, 'running');
    const types = stream.events.filter((e) => e.data.task_id === taskId).map((e) => `${e.data.type}:${e.data.status}`);
    assert.ok(types.includes('task.status:creating'), types.join(' '));
    assert.ok(types.includes('operation.started:running') || types.includes('operation.started:pending'), types.join(' '));
    assert.ok(stream.events.some((e) => e.data.type === 'operation.progress' && e.data.operation_id === createOp && typeof e.data.progress === 'number'));
    for (const e of stream.events) {
      assert.match(e.id, /^[0-9a-f]{8}\.\d+$/);
      assert.equal(e.data.id, e.id);
      assert.match(e.data.time, /^\d{4}-\d\d-\d\dT/);
    }
    assert.ok(Date.now() - t0 < 180_000);
    // renter B saw nothing of A's VM
    await new Promise((res) => setTimeout(res, 300));
    assert.equal(bStream.events.filter((e) => e.data.task_id === taskId).length, 0);
    stream.close();
    bStream.close();
    void running;
  });

  test('a reused, forged or other-kind ticket is refused with 403 and the DBC envelope', async () => {
    const t = await ticket('events/ticket', A());
    const first = await sse(`${d.api}${t.url}`);
    assert.equal(first.status, 200);
    first.close();
    const again = await sse(`${d.api}${t.url}`);
    assert.equal(again.status, 403);
    assert.deepEqual(JSON.parse(again.refusal), { errcode: -3, message: 'ticket is invalid or expired' });
    const forged = await sse(`${d.api}/api/v1/events?ticket=${'x'.repeat(43)}&node_id=${d.node_id}`);
    assert.equal(forged.status, 403);
    const none = await sse(`${d.api}/api/v1/events`);
    assert.equal(none.status, 400);
    // an events ticket does not open a console
    const ev = await ticket('events/ticket', A());
    const refused = (await wsOpen(wsUrl(`/api/v1/console?ticket=${ev.ticket}`)).catch((e: WsRefusal) => e)) as WsRefusal;
    assert.equal(refused.status, 403);
    assert.match(refused.body, /ticket is invalid or expired/);
  });

  test('serial console over a websocket: the login prompt, log in with the returned credentials, uname -a; a second viewer sees it too', async () => {
    const detail = await taskDetail(d, taskId);
    const t = await ticket(`tasks/console/${taskId}`, A());
    assert.match(t.url, /^\/api\/v1\/console\?ticket=/);
    const ws = await wsOpen(wsUrl(t.url));
    const con = new ConsoleText(ws);
    const t2 = await ticket(`tasks/console/${taskId}`, A());
    const viewer = new ConsoleText(await wsOpen(wsUrl(t2.url)));
    // the replay on attach: what the serial console showed before (the boot)
    await con.waitFor(/\S/, 0, 10_000);
    let m = con.mark();
    con.type('\r');
    await con.waitFor(/login: ?$/m, m, 30_000);
    m = con.mark();
    con.type(`${detail.user_name}\r`);
    await con.waitFor(/Password: ?$/m, m, 30_000);
    m = con.mark();
    con.type(`${detail.login_password}\r`);
    await con.waitFor(SHELL_PROMPT, m, 30_000);
    m = con.mark();
    const vm = viewer.mark();
    con.type('uname -a\r');
    const out = await con.waitFor(/Linux \S+ .*x86_64/, m, 30_000);
    assert.match(out, /Linux \S+ /);
    await viewer.waitFor(/Linux \S+ .*x86_64/, vm, 10_000);
    // resize control messages are not typed into the guest
    m = con.mark();
    ws.send(JSON.stringify({ type: 'resize', cols: 120, rows: 40 }));
    con.type('echo after-resize\r');
    const echoed = await con.waitFor(/after-resize\r?\n/, m, 30_000);
    assert.doesNotMatch(echoed, /resize"/);
    // 100 viewers on one console do not slow it: keystroke-to-echo with 1 viewer, then with 100
    const echo = async (): Promise<number[]> => {
      const out: number[] = [];
      for (let i = 0; i < 15; i++) {
        const mark = con.mark();
        const t0 = performance.now();
        con.type('x');
        await con.waitFor(/x/, mark, 10_000);
        out.push(performance.now() - t0);
        con.type('\x7f');
        await new Promise((r) => setTimeout(r, 30));
      }
      return out.sort((a, b) => a - b);
    };
    const alone = await echo();
    const crowd: ConsoleText[] = [];
    for (let i = 0; i < 99; i++) crowd.push(new ConsoleText(await wsOpen(wsUrl((await ticket(`tasks/console/${taskId}`, A())).url))));
    const crowded = await echo();
    const p50 = (xs: number[]) => xs[Math.floor(xs.length / 2)]!;
    console.log(`# console echo p50: 1 viewer ${p50(alone).toFixed(1)} ms, 100 viewers ${p50(crowded).toFixed(1)} ms`);
    assert.ok(p50(crowded) <= p50(alone) * 2 + 20, `echo p50 ${p50(alone).toFixed(1)} ms alone, ${p50(crowded).toFixed(1)} ms with 100 viewers`);
    m = con.mark();
    const marks = crowd.map((c) => c.mark());
    con.type('\x15echo every-viewer\r');
    await con.waitFor(/every-viewer\r?\n/, m, 30_000);
    await Promise.all(crowd.map((c, i) => c.waitFor(/every-viewer\r?\n/, marks[i]!, 10_000)));
    for (const c of crowd) c.ws.close();
    con.type('exit\r');
    ws.close();
    viewer.ws.close();
  });

  test("renter B cannot get a ticket for A's console or display", async () => {
    for (const path of [`tasks/console/${taskId}`, `tasks/vnc/${taskId}`]) {
      const r = await post(d.api, path, B());
      assert.deepEqual(r.body, { errcode: -3, message: 'task_id not exist' }, path);
    }
  });

  test('VNC over a websocket: the node answers the VNC password; the viewer gets RFB with no authentication and the screen', async () => {
    const t = await ticket(`tasks/vnc/${taskId}`, A());
    assert.equal((t as Record<string, unknown>).password, undefined);
    const ws = await wsOpen(wsUrl(t.url), ['binary']);
    assert.equal(ws.protocol, 'binary');
    let got = Buffer.alloc(0);
    const need = async (n: number): Promise<Buffer> => {
      await waitFor(`${n} RFB bytes`, async () => got.length >= n || undefined, 10_000, 20);
      const out = got.subarray(0, n);
      got = got.subarray(n);
      return out;
    };
    ws.on('message', (m: Buffer) => (got = Buffer.concat([got, m])));
    assert.equal((await need(12)).toString('latin1'), 'RFB 003.008\n');
    ws.send(Buffer.from('RFB 003.008\n', 'latin1'));
    assert.deepEqual([...(await need(2))], [1, 1]); // one security type: None
    ws.send(Buffer.from([1]));
    assert.equal((await need(4)).readUInt32BE(0), 0);
    ws.send(Buffer.from([1])); // ClientInit, shared
    const init = await need(24);
    const width = init.readUInt16BE(0);
    const height = init.readUInt16BE(2);
    assert.ok(width >= 640 && height >= 400, `framebuffer ${width}x${height}`);
    ws.close();
  });

  test('operations/<id>/wait answers when the operation ends; events resume after Last-Event-ID', async () => {
    const t = await ticket('events/ticket', A());
    const s1 = await sse(`${d.api}${t.url}&task_id=${taskId}`);
    const sd = await post(d.api, `tasks/poweroff/${taskId}`, A());
    assert.equal(sd.body.errcode, 0, sd.text);
    const waited = await post(d.api, `operations/${sd.body.operation_id}/wait`, A({ timeout: 20 }));
    assert.equal(waited.body.errcode, 0, waited.text);
    assert.equal(waited.body.message.status, 'done');
    const closed = await s1.next((e) => e.data.type === 'task.status' && e.data.status === 'closed', 30_000, 'closed by event');
    s1.close();
    // a reconnect that names the last event it saw gets what came after it, nothing before
    const startOp = await post(d.api, `tasks/start/${taskId}`, A());
    assert.equal(startOp.body.errcode, 0, startOp.text);
    await waitStatus(d, taskId, 'running', 120_000);
    const t2 = await ticket('events/ticket', A());
    const s2 = await sse(`${d.api}${t2.url}&task_id=${taskId}`, closed.id);
    const back = await s2.next((e) => e.data.type === 'task.status' && e.data.status === 'running', 10_000, 'running after resume');
    assert.ok(s2.events.every((e) => e.id !== closed.id));
    assert.ok(s2.events.some((e) => e.data.type === 'task.status' && e.data.status === 'starting'));
    void back;
    s2.close();
    const bad = await post(d.api, `operations/${sd.body.operation_id}/wait`, A({ timeout: 'x' }));
    assert.deepEqual(bad.body, { errcode: -3, message: 'timeout is invalid' });
    const theirs = await post(d.api, `operations/${createOp}/wait`, B({ timeout: 0 }));
    assert.deepEqual(theirs.body, { errcode: -3, message: 'operation not exist' });
  });
});
