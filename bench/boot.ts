// VM boot through the API of `dbc up` against a bare qemu-system-x86_64 boot of the same image with the same flags,
// same run, alternating. Both are measured to the first `SSH-2.0-` banner read from the forwarded SSH port and to
// the first SSH login with the seed's password.
//   api:  request → tasks/start reply (ack), → status "running" (polled every POLL_MS), → SSH login tried only
//         from then on, as a client that believes the status (running_to_ssh_login_ms: target ≤ 2 s); the banner
//         is probed from the request on
//   bare: overlay + data disk + NoCloud seed prepared first (not timed, reported as bare_prep_ms), then
//         spawn qemu-system-x86_64 with buildQemuArgs' argv (1 vCPU, 1 GiB, virtio, legacy BIOS) → SSH banner → login
// BENCH_BOOT_IMAGE=cloud boots the Debian 12 cloud image (scripts/build-cloud-image.sh) instead of the test image:
// create → SSH login vs bare QEMU, target ≤ 1.05×.
// The banner probe connects every PROBE_MS; before the guest's dropbear listens, QEMU's user-mode forward accepts
// and then closes the connection, so a probe counts only once bytes starting with SSH-2.0- arrive. Prints JSON.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { signNonce } from '../src/cli/sign.js';
import { writeNoCloudSeed } from '../src/storage/seed.js';
import { createDisk, createOverlay } from '../src/storage/qemu-img.js';
import { buildQemuArgs } from '../src/vm/qemu-args.js';
import { kvmUsable } from '../src/vm/qemu.js';
import { waitGuestReady } from '../src/vm/readiness.js';
import type { VmSpec } from '../src/vm/types.js';
import {
  ensureCloudImage,
  ensureTestImage,
  freeTcpPort,
  post,
  qemuPidsUnder,
  killQemuUnder,
  signedBody,
  sleep,
  sshExec,
  startDevnet,
  type Devnet,
} from '../test/helpers/devnet.js';
import { freeVncPort } from '../test/helpers/tasks.js';
import { median, rounder } from './stats.js';

const CLOUD = process.env.BENCH_BOOT_IMAGE === 'cloud';
const RUNS = Number(process.env.BENCH_BOOT_RUNS ?? (CLOUD ? 1 : 3));
const BOOT_TIMEOUT_MS = Number(process.env.BENCH_BOOT_TIMEOUT_MS ?? (CLOUD ? 400_000 : 120_000));
/** stop starting new rounds once this much time has gone (the whole bench should stay near 3 minutes) */
const BUDGET_MS = Number(process.env.BENCH_BOOT_BUDGET_MS ?? 150_000);
const PROBE_MS = 100;
const POLL_MS = 100;
const HOLD_MS = 500;
const TARGET_RATIO = 1.2;
const TARGET_ACK_MS = 50;
/** create → SSH login through the API vs bare QEMU */
const TARGET_LOGIN_RATIO = 1.05;
/** a client that logs in when the status says running waits at most this long */
const TARGET_RUNNING_TO_LOGIN_MS = 2000;
const DATA_DISK_GB = CLOUD ? 2 : 1;
/** one login attempt may take this long: under TCG a first login while cloud-init runs takes tens of seconds, and a
 * shorter limit only restarts the handshake */
const LOGIN_TIMEOUT_MS = 60_000;

/** failed login attempts of the last waitLogin: when each started (ms from t0), how long it took, why it failed */
let loginFailures: Array<{ at_ms: number; took_ms: number; error: string }> = [];

/** ms from t0 until an SSH login with user/password succeeds, a try every PROBE_MS once the last one failed */
async function waitLogin(port: number, user: string, password: string, t0: number, timeoutMs: number, gone?: () => string | null): Promise<number> {
  const end = t0 + timeoutMs;
  let last = '';
  loginFailures = [];
  while (performance.now() < end) {
    const why = gone?.();
    if (why) throw new Error(why);
    const started = performance.now();
    try {
      await sshExec('127.0.0.1', port, user, password, 'true', LOGIN_TIMEOUT_MS);
      return performance.now() - t0;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
      if (loginFailures.length < 20)
        loginFailures.push({ at_ms: Math.round(started - t0), took_ms: Math.round(performance.now() - started), error: last.slice(0, 80) });
      await sleep(PROBE_MS);
    }
  }
  throw new Error(`no SSH login on 127.0.0.1:${port} within ${timeoutMs} ms (last: ${last})`);
}

const round = rounder(1);

/** one connection: resolves with the first bytes if they are an SSH banner, false when closed/refused/silent */
function tryBanner(port: number, waitMs: number): Promise<string | false> {
  return new Promise((resolve) => {
    const sock = net.createConnection({ host: '127.0.0.1', port });
    let buf = '';
    let done = false;
    const finish = (v: string | false) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => finish(false), waitMs);
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      if (buf.length >= 8 || buf.includes('\n')) finish(buf.startsWith('SSH-2.0-') ? buf.split(/\r?\n/)[0]! : false);
    });
    sock.on('error', () => finish(false));
    sock.on('close', () => finish(false));
  });
}

/** ms from t0 until the forwarded port gives an SSH banner; a connection attempt every PROBE_MS */
async function waitBanner(port: number, t0: number, timeoutMs: number, gone?: () => string | null): Promise<number> {
  const end = t0 + timeoutMs;
  while (performance.now() < end) {
    const why = gone?.();
    if (why) throw new Error(why);
    const started = performance.now();
    // QEMU's forward accepts at once and holds the connection while it tries the guest (whose SYN retries back off):
    // give up on a silent connection after HOLD_MS and dial again, which makes slirp send a fresh SYN
    const banner = await tryBanner(port, HOLD_MS);
    if (banner) return performance.now() - t0;
    const wait = PROBE_MS - (performance.now() - started);
    if (wait > 0) await sleep(wait);
  }
  throw new Error(`no SSH banner on 127.0.0.1:${port} within ${timeoutMs} ms`);
}

interface ApiRun {
  ack_ms: number;
  to_running_ms: number;
  to_ssh_banner_ms: number;
  to_ssh_login_ms: number;
  login_failures: typeof loginFailures;
}

async function apiRun(d: Devnet, sessionJson: (additional: Record<string, unknown>) => string): Promise<ApiRun> {
  const sshPort = await freeTcpPort();
  const vncPort = await freeVncPort();
  const body = JSON.stringify(
    signedBody(d.node_id, d.renter.seed, {
      image_name: d.image,
      ssh_port: String(sshPort),
      vnc_port: String(vncPort),
      cpu_cores: '1',
      mem_size: '1',
      disk_size: String(DATA_DISK_GB),
    }),
  );
  const t0 = performance.now();
  const r = await post(d.api, 'tasks/start', body, true);
  const ack = performance.now() - t0;
  if (r.body.errcode !== 0) throw new Error(`tasks/start: ${r.text}`);
  const taskId = String(r.body.message.task_id);
  let failed: string | null = null;
  const banner = waitBanner(sshPort, t0, BOOT_TIMEOUT_MS, () => failed);
  banner.catch(() => undefined); // awaited below; this only keeps an early failure of the poll from leaving it unhandled
  try {
    // status poll with session auth (one pre-signed body, no signing inside the timed loop)
    const detailJson = sessionJson({});
    let toRunning = NaN;
    let password = '';
    const end = t0 + BOOT_TIMEOUT_MS;
    while (performance.now() < end) {
      const s = await post(d.api, `tasks/${taskId}`, detailJson, true);
      if (s.body.errcode !== 0) throw new Error(`tasks/${taskId}: ${s.text}`);
      const status = String(s.body.message.status);
      if (status === 'running') {
        toRunning = performance.now() - t0;
        password = String(s.body.message.login_password);
        break;
      }
      if (status.includes('error')) throw new Error(`task ${taskId} went to ${status}: ${String(s.body.message.last_error ?? '')}`);
      await sleep(POLL_MS);
    }
    if (Number.isNaN(toRunning)) throw new Error(`task ${taskId} not running within ${BOOT_TIMEOUT_MS} ms`);
    const toLogin = await waitLogin(sshPort, 'dbc', password, t0, BOOT_TIMEOUT_MS, () => failed);
    const toBanner = await banner;
    return { ack_ms: ack, to_running_ms: toRunning, to_ssh_banner_ms: toBanner, to_ssh_login_ms: toLogin, login_failures: loginFailures };
  } catch (err) {
    failed ??= err instanceof Error ? err.message : String(err);
    throw err;
  } finally {
    const del = await post(d.api, `tasks/delete/${taskId}`, signedBody(d.node_id, d.renter.seed)).catch((e: unknown) => ({
      text: String(e),
      body: { errcode: -1 },
    }));
    if (del.body.errcode !== 0) process.stderr.write(`boot bench: tasks/delete/${taskId}: ${del.text}\n`);
    // the next run should not share the CPUs with this VM
    const end = Date.now() + 30_000;
    while (qemuPidsUnder(d.dataDir).length > 0 && Date.now() < end) await sleep(100);
    killQemuUnder(d.dataDir);
  }
}

interface BareRun {
  prep_ms: number;
  /** when the node's readiness rule (vm/readiness.ts) would have said running */
  to_ready_ms: number;
  to_ssh_banner_ms: number;
  to_ssh_login_ms: number;
  login_failures: typeof loginFailures;
}

async function bareRun(image: string, root: string, n: number): Promise<BareRun> {
  const dir = join(root, `bare${n}`);
  const runDir = join(dir, 'run');
  mkdirSync(runDir, { recursive: true });
  const sshPort = await freeTcpPort();
  const vncPort = await freeVncPort();
  const p0 = performance.now();
  const vda = join(dir, 'vda.qcow2');
  const vdb = join(dir, 'vdb.qcow2');
  const seed = join(dir, 'seed.iso');
  await createOverlay(image, vda);
  await createDisk(vdb, DATA_DISK_GB);
  const taskId = `benchbare${n}${Date.now().toString(36)}`;
  // the seed the node writes (vm/create.ts): the login user, its password, the data disk cloud-init formats
  await writeNoCloudSeed(seed, { instanceId: taskId, hostname: `dbc-${taskId.slice(0, 12)}`, user: 'dbc', password: 'benchpassword123', dataDisk: 'vdb' });
  const prep = performance.now() - p0;
  const spec: VmSpec = {
    taskId,
    runDir,
    name: taskId,
    cpuCores: 1,
    memMiB: 1024,
    disks: [
      { name: 'vda', path: vda },
      { name: 'vdb', path: vdb },
    ],
    seedIso: seed,
    biosMode: 'legacy',
    os: 'linux',
    nicModel: 'virtio',
    forwards: [{ proto: 'tcp', hostAddr: '127.0.0.1', hostPort: sshPort, guestPort: 22 }],
    vnc: { listen: '127.0.0.1', port: vncPort, password: 'benchvnc' },
    gpus: [],
    serialLog: join(dir, 'serial.log'),
  };
  // the accelerator the node's driver picks (vm/qemu.ts): KVM only when /dev/kvm opens and the CPU has vmx/svm
  const args = buildQemuArgs(spec, { accel: kvmUsable() ? 'kvm' : 'tcg', ovmfCode: '', ovmfVars: '' });
  // launched the way the node's driver launches it (vm/qemu.ts): detached in its own session, output to a file
  const stderrPath = join(runDir, 'qemu.stderr.log');
  const logFd = openSync(stderrPath, 'a');
  let exited: string | null = null;
  const t0 = performance.now();
  let child: ChildProcess;
  try {
    child = spawn('qemu-system-x86_64', args, { detached: true, stdio: ['ignore', logFd, logFd] });
  } finally {
    closeSync(logFd);
  }
  const stderrTail = () => {
    try {
      return readFileSync(stderrPath, 'utf8').trim().slice(-500);
    } catch {
      return '';
    }
  };
  child.on('exit', (code, signal) => (exited = `bare QEMU exited (${signal ?? code}): ${stderrTail()}`));
  child.on('error', (err) => (exited = `cannot run qemu-system-x86_64: ${err.message}`));
  try {
    const banner = waitBanner(sshPort, t0, BOOT_TIMEOUT_MS, () => exited);
    banner.catch(() => undefined); // awaited below
    // the node's own readiness rule (vm/readiness.ts) on the bare VM: a login starts when the node would say running
    const ready = await waitGuestReady(
      {
        hv: { agent: () => Promise.reject(new Error('not asked')) },
        taskId,
        serialLog: spec.serialLog,
        serialFrom: 0,
        port: { host: '127.0.0.1', port: sshPort, protocol: 'ssh' },
      },
      { capMs: BOOT_TIMEOUT_MS, stop: () => exited !== null },
    );
    const toReady = performance.now() - t0;
    if (ready !== 'ssh' && ready !== 'serial') throw new Error(`bare QEMU: the readiness rule said ${ready}: ${String(exited)}`);
    const toLogin = await waitLogin(sshPort, 'dbc', 'benchpassword123', performance.now(), BOOT_TIMEOUT_MS, () => exited).then((ms) => toReady + ms);
    return { prep_ms: prep, to_ready_ms: toReady, to_ssh_banner_ms: await banner, to_ssh_login_ms: toLogin, login_failures: loginFailures };
  } catch (err) {
    let serial = '';
    try {
      serial = readFileSync(spec.serialLog, 'utf8').slice(-1500);
    } catch {
      // no log
    }
    throw new Error(`bare QEMU: ${err instanceof Error ? err.message : String(err)}\nargv: ${args.join(' ')}\nserial log tail:\n${serial}`);
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGKILL');
      await Promise.race([gone, sleep(5000)]);
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchBoot(): Promise<Record<string, unknown>> {
  const started = Date.now();
  const loadBefore = os.loadavg();
  const image = CLOUD ? ensureCloudImage() : ensureTestImage();
  const root = mkdtempSync(join(os.tmpdir(), 'dbc-bench-boot-'));
  let d: Devnet | undefined;
  const api: ApiRun[] = [];
  const bare: BareRun[] = [];
  const order: string[] = [];
  try {
    d = await startDevnet({ image });
    const dn = d;
    // session auth for the status polls: the renter's session id, signed once
    const sid = await post(dn.api, 'mining_nodes/session_id', signedBody(dn.node_id, dn.renter.seed));
    if (sid.body.errcode !== 0) throw new Error(`mining_nodes/session_id: ${sid.text}`);
    const sessionId = String(sid.body.message.session_id);
    const sessionSign = signNonce(dn.renter.seed, sessionId).session_id_sign;
    const sessionJson = (additional: Record<string, unknown>) =>
      JSON.stringify({ peer_nodes_list: [dn.node_id], additional, session_id: sessionId, session_id_sign: sessionSign });

    for (let i = 0; i < RUNS; i++) {
      if (i > 0 && Date.now() - started > BUDGET_MS) break;
      // alternate which side goes first, so a drift in background load hits both
      const sides = i % 2 === 0 ? (['api', 'bare'] as const) : (['bare', 'api'] as const);
      for (const side of sides) {
        if (side === 'api') api.push(await apiRun(dn, sessionJson));
        else bare.push(await bareRun(image, root, i));
        order.push(side);
      }
    }
  } finally {
    await d?.destroy();
    killQemuUnder(root);
    rmSync(root, { recursive: true, force: true });
  }

  const ack = median(api.map((r) => r.ack_ms));
  const apiBanner = median(api.map((r) => r.to_ssh_banner_ms));
  const bareBanner = median(bare.map((r) => r.to_ssh_banner_ms));
  const ratio = apiBanner / bareBanner;
  const apiLogin = median(api.map((r) => r.to_ssh_login_ms));
  const bareLogin = median(bare.map((r) => r.to_ssh_login_ms));
  const loginRatio = apiLogin / bareLogin;
  const runningToLogin = Math.max(...api.map((r) => r.to_ssh_login_ms - r.to_running_ms));
  return {
    image: CLOUD ? 'debian-12-cloud' : 'dbc-test',
    api_to_ssh_login_ms: Math.round(apiLogin),
    bare_qemu_to_ssh_login_ms: Math.round(bareLogin),
    ratio_login: round(loginRatio, 3),
    target_ratio_login: TARGET_LOGIN_RATIO,
    running_to_ssh_login_ms_max: Math.round(runningToLogin),
    target_running_to_ssh_login_ms: TARGET_RUNNING_TO_LOGIN_MS,
    pass_login: loginRatio <= TARGET_LOGIN_RATIO && runningToLogin <= TARGET_RUNNING_TO_LOGIN_MS,
    api_ack_ms: round(ack),
    api_to_running_ms: Math.round(median(api.map((r) => r.to_running_ms))),
    api_to_ssh_banner_ms: Math.round(apiBanner),
    bare_qemu_to_ssh_banner_ms: Math.round(bareBanner),
    ratio_ssh: round(ratio, 3),
    target_ratio: TARGET_RATIO,
    target_ack_ms: TARGET_ACK_MS,
    pass: ratio <= TARGET_RATIO && ack <= TARGET_ACK_MS,
    runs: {
      order,
      api: api.map((r) => ({
        ack_ms: round(r.ack_ms),
        to_running_ms: Math.round(r.to_running_ms),
        to_ssh_banner_ms: Math.round(r.to_ssh_banner_ms),
        to_ssh_login_ms: Math.round(r.to_ssh_login_ms),
        login_failures: r.login_failures,
      })),
      bare: bare.map((r) => ({
        prep_ms: Math.round(r.prep_ms),
        to_ready_ms: Math.round(r.to_ready_ms),
        to_ssh_banner_ms: Math.round(r.to_ssh_banner_ms),
        to_ssh_login_ms: Math.round(r.to_ssh_login_ms),
        login_failures: r.login_failures,
      })),
    },
    bare_prep_ms: Math.round(median(bare.map((r) => r.prep_ms))),
    accel: kvmUsable() ? 'kvm' : 'tcg',
    cores: os.cpus().length,
    loadavg_before: loadBefore.map((x) => round(x, 2)),
    loadavg_after: os.loadavg().map((x) => round(x, 2)),
    total_s: round((Date.now() - started) / 1000),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  benchBoot().then(
    (r) => {
      process.stdout.write(`${JSON.stringify(r)}\n`);
    },
    (err) => {
      process.stderr.write(`boot bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
