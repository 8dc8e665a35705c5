// `dbc up`: the embedded default. One process runs a GPU node, the client HTTP API in front of it, and a local
// rental for a demo renter; it writes DIR/devnet.json and prints a walkthrough.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, linkSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { Command } from 'commander';
import pino from 'pino';
import { buildApi } from '../api/server.js';
import { InProcessTransport } from '../api/in-process.js';
import { identityFromSeed } from '../auth/identity.js';
import { startGpuNode, nodeLayout } from '../node/bootstrap.js';
import { LocalRentals } from '../rental/local.js';
import { signNonce } from './sign.js';
import { defaultDataDir, packageRoot } from './paths.js';

export const DEFAULT_IMAGE = 'dbc-test.qcow2';

export interface UpOptions {
  dataDir: string;
  httpPort: number;
  host: string;
  image?: string;
  shutdownTimeoutMs?: number;
  sweepIntervalMs?: number;
  deleteGraceMs?: number;
  quiet?: boolean;
}

export interface Devnet {
  api: string;
  node_id: string;
  renter: { wallet: string; seed: string };
  image: string;
}

/** put the base image into the node's image dir: a given file, the repo's cached build, or a fresh build */
async function ensureImage(imageDir: string, given: string | undefined, say: (s: string) => void): Promise<string> {
  mkdirSync(imageDir, { recursive: true });
  const name = given ? basename(given) : DEFAULT_IMAGE;
  const target = join(imageDir, name);
  if (existsSync(target)) return name;
  const source = given ? resolve(given) : join(packageRoot(), '.cache', 'images', DEFAULT_IMAGE);
  if (!existsSync(source)) {
    if (given) throw new Error(`--image ${given}: no such file`);
    say(`building the test guest image (${DEFAULT_IMAGE}) with scripts/build-test-image.sh ...`);
    await new Promise<void>((ok, fail) => {
      const child = spawn('bash', [join(packageRoot(), 'scripts', 'build-test-image.sh'), source], { stdio: ['ignore', 'inherit', 'inherit'] });
      child.on('error', fail);
      child.on('exit', (code) => (code === 0 ? ok() : fail(new Error(`build-test-image.sh exited with ${code}`))));
    });
  }
  const tmp = `${target}.${process.pid}.part`;
  try {
    linkSync(source, tmp); // same filesystem: instant, and the base is never written (VMs use overlays)
  } catch {
    copyFileSync(source, tmp);
  }
  renameSync(tmp, target);
  return name;
}

function loadOrCreateRenterSeed(dataDir: string): string {
  const file = join(dataDir, 'devnet.json');
  if (existsSync(file)) {
    try {
      const old = JSON.parse(readFileSync(file, 'utf8')) as Devnet;
      if (/^0x[0-9a-f]{64}$/.test(old.renter?.seed ?? '')) return old.renter.seed;
    } catch {
      // rewritten below
    }
  }
  return `0x${randomBytes(32).toString('hex')}`;
}

export async function runUp(o: UpOptions): Promise<{ devnet: Devnet; close(): Promise<void> }> {
  const say = (s: string) => {
    if (!o.quiet) console.log(s);
  };
  mkdirSync(o.dataDir, { recursive: true });
  const logger = pino({ level: process.env.DBC_LOG_LEVEL ?? 'info' }, pino.destination({ dest: join(o.dataDir, 'dbc.log'), sync: false, mkdir: true }));
  const layout = nodeLayout(o.dataDir);
  const image = await ensureImage(layout.imageDir, o.image, say);

  const running = await startGpuNode({
    dataDir: o.dataDir,
    name: 'dbc-up',
    publicHost: o.host === '0.0.0.0' ? '127.0.0.1' : o.host,
    forwardHost: o.host,
    vncListen: o.host,
    logger,
    shutdownTimeoutMs: o.shutdownTimeoutMs,
    expiry: { sweepIntervalMs: o.sweepIntervalMs, deleteGraceMs: o.deleteGraceMs },
  });

  const seed = loadOrCreateRenterSeed(o.dataDir);
  const renter = identityFromSeed(seed);
  const rentals = running.rentals as LocalRentals;
  const gpus = (await running.node.ctx.inventory.snapshot()).gpus.length;
  rentals.grant(renter.address, gpus, Date.now() + 30 * 24 * 3600_000);

  const api = await buildApi({ transport: new InProcessTransport(running.node), logger: false });
  await api.listen({ port: o.httpPort, host: o.host });
  const address = api.server.address();
  const port = typeof address === 'object' && address ? address.port : o.httpPort;
  const apiUrl = `http://${o.host === '0.0.0.0' ? '127.0.0.1' : o.host}:${port}`;

  const devnet: Devnet = { api: apiUrl, node_id: running.identity.nodeId, renter: { wallet: renter.address, seed }, image };
  const file = join(o.dataDir, 'devnet.json');
  writeFileSync(`${file}.tmp`, JSON.stringify(devnet, null, 2) + '\n', { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
  say(walkthrough(devnet));
  logger.info({ api: apiUrl, node_id: devnet.node_id }, 'dbc up ready');

  let closing: Promise<void> | undefined;
  return {
    devnet,
    close() {
      closing ??= (async () => {
        await api.close();
        await running.close();
        logger.flush();
      })();
      return closing;
    },
  };
}

function walkthrough(d: Devnet): string {
  const body = (additional: object, auth: object) =>
    JSON.stringify({ peer_nodes_list: [d.node_id], additional, ...auth });
  const signed = () => {
    const s = signNonce(d.renter.seed);
    return { wallet: s.wallet, nonce: s.nonce, sign: s.sign };
  };
  const curl = (path: string, json: string) => `curl -s -X POST ${d.api}/api/v1/${path} -d '${json}'`;
  return [
    `dbc up: GPU node ${d.node_id} ready; API ${d.api}; renter ${d.renter.wallet}`,
    `devnet written; every nonce below is single-use; fresh ones: dbc sign --seed ${d.renter.seed}`,
    '',
    '# machine info (no auth)',
    curl('mining_nodes', body({}, {})),
    '# create a VM (answers at once with status "creating")',
    curl('tasks/start', body({ image_name: d.image, ssh_port: '20022', vnc_port: '5901', cpu_cores: '1', mem_size: '1', disk_size: '1' }, signed())),
    '# list your VMs, then read one with tasks/<task_id> for ssh_port, user_name and login_password',
    curl('tasks', body({}, signed())),
    '# a session id for third parties (sign it with: dbc sign --seed <seed> --session-id <id>)',
    curl('mining_nodes/session_id', body({}, signed())),
    '',
  ].join('\n');
}

export function registerUp(program: Command): void {
  program
    .command('up')
    .description('run a whole network in one process: GPU node, HTTP API, local rental for a demo renter')
    .option('--data-dir <dir>', 'data directory', defaultDataDir())
    .option('--http-port <n>', 'HTTP API port', '5052')
    .option('--host <addr>', 'address to listen on (API, forwarded ports, VNC)', '127.0.0.1')
    .option('--image <file>', `base image to serve (default: ${DEFAULT_IMAGE}, built if missing)`)
    .option('--shutdown-timeout <seconds>', 'ACPI shutdown wait before the hard stop', '60')
    .option('--expiry-sweep <seconds>', 'how often ended rentals are looked for', '60')
    .option('--delete-grace <seconds>', 'delete VMs this long after their rental ended (original: 3 days)', String(3 * 24 * 3600))
    .action(async (opts: Record<string, string>) => {
      const num = (k: string, min: number, max: number) => {
        const n = Number(opts[k]);
        if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())} must be in [${min}, ${max}]`);
        return n;
      };
      const up = await runUp({
        dataDir: resolve(opts.dataDir!),
        httpPort: num('httpPort', 0, 65535),
        host: opts.host!,
        image: opts.image,
        shutdownTimeoutMs: num('shutdownTimeout', 1, 3600) * 1000,
        sweepIntervalMs: num('expirySweep', 1, 86400) * 1000,
        deleteGraceMs: num('deleteGrace', 0, 365 * 86400) * 1000,
      });
      const stop = () => {
        up.close().then(() => process.exit(0), () => process.exit(1));
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
