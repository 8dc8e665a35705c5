// Image transfer throughput: our TransferManager (what images/download and images/upload run) against plain
// `rsync` of the same file to/from the same local rsync daemon, in the same run, alternating, median of N.
// Target: ours >= 0.9 x plain. The file is random (incompressible) and sits in page cache for both, so the
// comparison measures the transfer path (rsync protocol, our --append-verify / --partial-dir, progress polling,
// the remote size check before the start), not the disk. Prints JSON.
import { execFile } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startRsyncDaemon } from '../src/images/daemon.js';
import { ImageServerSecrets } from '../src/images/secrets.js';
import { rsyncUrl } from '../src/images/servers.js';
import { MemoryTransferRepo, TransferManager } from '../src/images/transfers.js';
import { memoryOps } from '../test/helpers/storage-fakes.js';
import { median, rounder } from './stats.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const SIZE_MIB = Number(process.env.BENCH_IMAGE_MIB ?? 512);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const TARGET = 0.9;
const quiet = { info() {}, warn() {}, error() {} };

const round = rounder(3);

async function timed(fn: () => Promise<unknown>): Promise<number> {
  await run('sync'); // no writeback of the previous run pending
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

const dir = mkdtempSync(join(tmpdir(), 'dbc-bench-images-'));
const daemon = await startRsyncDaemon({ dir: join(dir, 'centre') });
try {
  const local = join(dir, 'local');
  mkdirSync(local);
  const src = join(daemon.path, 'bench.qcow2');
  const fd = openSync(src, 'w');
  const chunk = Buffer.alloc(16 * MiB);
  for (let i = 0; i < SIZE_MIB / 16; i++) writeSync(fd, randomFillSync(chunk));
  closeSync(fd);
  const localSrc = join(local, 'up-src.qcow2');
  await run('cp', [src, localSrc]);

  // uploads go to the centre's authenticated upload module (anonymous uploads are refused since issue 10): both
  // sides use the credentials `dbc up` holds
  const secrets = new ImageServerSecrets();
  secrets.set(daemon.server, daemon.upload);
  const upUrl = (file: string) => rsyncUrl(daemon.server, file, { user: daemon.upload.user, module: daemon.upload.uploadModule });
  const tm = new TransferManager({ repo: new MemoryTransferRepo(), ops: memoryOps(), log: quiet, secrets });
  const dl = { plain: [] as number[], ours: [] as number[] };
  const ul = { plain: [] as number[], ours: [] as number[] };
  for (let i = 0; i < RUNS; i++) {
    // download: centre -> local
    dl.plain.push(await timed(() => run('rsync', [rsyncUrl(daemon.server, 'bench.qcow2'), join(local, 'plain.qcow2')])));
    rmSync(join(local, 'plain.qcow2'));
    dl.ours.push(
      await timed(async () => {
        const row = await tm.startDownload({ server: daemon.server, file: 'bench.qcow2', destDir: local, wallet: 'bench' });
        const end = await tm.settled(row.id);
        if (end?.status !== 'done') throw new Error(`download ${end?.status}: ${end?.error}`);
      }),
    );
    rmSync(join(local, 'bench.qcow2'));
    // upload: local -> centre
    ul.plain.push(await timed(() => run('rsync', [`--password-file=${daemon.upload.passwordFile}`, localSrc, upUrl('plain-up.qcow2')])));
    rmSync(join(daemon.path, 'plain-up.qcow2'));
    ul.ours.push(
      await timed(async () => {
        const row = await tm.startUpload({ server: daemon.server, localPath: localSrc, file: 'ours-up.qcow2', wallet: 'bench' });
        const end = await tm.settled(row.id);
        if (end?.status !== 'done') throw new Error(`upload ${end?.status}: ${end?.error}`);
      }),
    );
    rmSync(join(daemon.path, 'ours-up.qcow2'));
  }
  const summary = (r: { plain: number[]; ours: number[] }) => {
    const plainS = median(r.plain);
    const oursS = median(r.ours);
    return {
      plain_s_median: round(plainS),
      ours_s_median: round(oursS),
      plain_mib_s: round(SIZE_MIB / plainS, 1),
      ours_mib_s: round(SIZE_MIB / oursS, 1),
      ratio: round(plainS / oursS),
      plain_s_runs: r.plain.map((x) => round(x)),
      ours_s_runs: r.ours.map((x) => round(x)),
    };
  };
  const download = summary(dl);
  const upload = summary(ul);
  console.log(
    JSON.stringify(
      {
        bench: 'images_transfer',
        note: `${SIZE_MIB} MiB random file, local rsync daemon on 127.0.0.1, ${RUNS} alternating runs each; ratio = plain time / our time (throughput ours / plain)`,
        file_mib: SIZE_MIB,
        download,
        upload,
        target_ratio: TARGET,
        pass: download.ratio >= TARGET && upload.ratio >= TARGET,
      },
      null,
      2,
    ),
  );
} finally {
  await daemon.stop();
  rmSync(dir, { recursive: true, force: true });
}
