// Image transfers against a real rsync daemon: progress in real bytes, stop and resume, a killed rsync, a second
// transfer of the same file, a file that changes under the transfer, a full disk, uploads with resume.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeSync, closeSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { ImageServerSecrets } from '../../src/images/secrets.js';
import { freeBytes } from '../../src/images/names.js';
import { rsyncUrl } from '../../src/images/servers.js';
import { openDb } from '../../src/store/db.js';
import { TaskStore } from '../../src/store/tasks.js';
import { startRsyncDaemon, type RsyncDaemon } from '../../src/images/daemon.js';
import { listImages, parseListing, statRemote } from '../../src/images/rsync.js';
import { MemoryTransferRepo, STAGING_DIR, TransferManager, stagingPathOf } from '../../src/images/transfers.js';
import { DbcError } from '../../src/protocol/errors.js';
import { EventBus, Operations } from '../../src/ops/index.js';
import { quietLogger } from '../../src/util/logger.js';
import { memoryOps } from '../helpers/storage-fakes.js';

const quiet = { info() {}, warn() {}, error() {} };
const MiB = 1024 * 1024;

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** a file of random data (incompressible, so bandwidth limits behave) */
function randomFile(path: string, bytes: number): void {
  const fd = openSync(path, 'w');
  try {
    const chunk = Buffer.alloc(4 * MiB);
    for (let done = 0; done < bytes; done += chunk.length) {
      for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE((Math.random() * 0x100000000) >>> 0, i);
      writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - done));
    }
  } finally {
    closeSync(fd);
  }
}

async function until<T>(what: string, fn: () => T | undefined | false, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('rsync image transfers', { timeout: 300_000 }, () => {
  let dir: string;
  let daemon: RsyncDaemon;
  let local: string;
  /** the upload credentials of the centre (what dbc up holds from the daemon it started) */
  let secrets: ImageServerSecrets;
  const SIZE = 32 * MiB;

  before(async () => {
    dir = mkdtempSync(join(os.tmpdir(), 'dbc-rsync-'));
    daemon = await startRsyncDaemon({ dir: join(dir, 'centre') });
    secrets = new ImageServerSecrets();
    secrets.set(daemon.server, daemon.upload);
    local = join(dir, 'local');
    mkdirSync(local);
    randomFile(join(daemon.path, 'big.qcow2'), SIZE);
  });
  after(async () => {
    await daemon?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the daemon lists .qcow2 files with their sizes; a missing file is undefined', async () => {
    writeFileSafe(join(daemon.path, 'notes.txt'), 'x');
    const list = await listImages(daemon.server);
    assert.deepEqual(
      list.map((f) => [f.name, f.size]),
      [['big.qcow2', SIZE]],
    );
    assert.equal((await statRemote(daemon.server, 'big.qcow2'))?.size, SIZE);
    assert.equal(await statRemote(daemon.server, 'none.qcow2'), undefined);
    assert.deepEqual(
      parseListing('-rw-r--r--    314,572,800 2026/11/27 14:27:36 a b.qcow2\ndrwxr-xr-x 4,096 2026/11/27 14:27:31 .').map((f) => f.size),
      [314572800],
    );
  });

  test('download: progress in real bytes, stop at about 50 %, resume, checksum equal to the source', async () => {
    // 4 MiB/s: a 32 MiB file takes about 8 s
    const tm = new TransferManager({ repo: new MemoryTransferRepo(), ops: memoryOps(), log: quiet, bwlimitKiB: 4096, progressIntervalMs: 100 });
    const row = await tm.startDownload({ server: daemon.server, file: 'big.qcow2', destDir: local, wallet: 'w' });
    assert.equal(row.total_bytes, SIZE);
    await assert.rejects(tm.startDownload({ server: daemon.server, file: 'big.qcow2', destDir: local, wallet: 'w' }), /image:big.qcow2 in downloading/);
    const seen: number[] = [];
    await until('half way', () => {
      const r = tm.get(row.id)!;
      if (r.done_bytes > 0) seen.push(r.done_bytes);
      return r.done_bytes >= SIZE / 2;
    });
    const stopped = await tm.stop('download', 'big.qcow2');
    assert.equal(stopped.status, 'stopped');
    const partial = statSync(stagingPathOf(join(local, 'big.qcow2'), 'big.qcow2')).size;
    assert.ok(partial >= SIZE / 2 && partial < SIZE, `partial ${partial}`);
    assert.equal(stopped.done_bytes, partial, 'progress is the bytes on disk');
    assert.ok(seen.length >= 3 && seen.every((v, i) => i === 0 || v >= seen[i - 1]!), `progress grows: ${seen.join(',')}`);
    assert.equal(existsSync(join(local, 'big.qcow2')), false, 'no file under the final name while partial');

    const tm2 = new TransferManager({ repo: new MemoryTransferRepo(), ops: memoryOps(), log: quiet, progressIntervalMs: 100 });
    const again = await tm2.startDownload({ server: daemon.server, file: 'big.qcow2', destDir: local, wallet: 'w' });
    assert.equal(again.done_bytes, partial, 'the resumed download starts where the partial file ends');
    const done = await tm2.settled(again.id);
    assert.equal(done?.status, 'done', done?.error);
    assert.equal(sha256(join(local, 'big.qcow2')), sha256(join(daemon.path, 'big.qcow2')));
    assert.deepEqual(readdirSync(join(local, STAGING_DIR)), [], 'no partial file left');
    rmSync(join(local, 'big.qcow2'));
  });

  test('a killed rsync leaves a resumable partial file', async () => {
    const tm = new TransferManager({ repo: new MemoryTransferRepo(), ops: memoryOps(), log: quiet, bwlimitKiB: 4096, progressIntervalMs: 100 });
    const row = await tm.startDownload({ server: daemon.server, file: 'big.qcow2', destDir: local, wallet: 'w' });
    const pid = await until('rsync pid', () => tm.get(row.id)!.pid || undefined);
    await until('some data', () => tm.get(row.id)!.done_bytes > 4 * MiB);
    process.kill(pid, 'SIGKILL');
    const ended = await tm.settled(row.id);
    assert.equal(ended?.status, 'interrupted');
    assert.match(ended.error, /download again to resume/);
    const partial = statSync(stagingPathOf(join(local, 'big.qcow2'), 'big.qcow2')).size;
    assert.ok(partial > 0);
    const tm2 = new TransferManager({ repo: new MemoryTransferRepo(), ops: memoryOps(), log: quiet });
    const again = await tm2.startDownload({ server: daemon.server, file: 'big.qcow2', destDir: local, wallet: 'w' });
    assert.equal(again.done_bytes, partial);
    assert.equal((await tm2.settled(again.id))?.status, 'done');
    assert.equal(sha256(join(local, 'big.qcow2')), sha256(join(daemon.path, 'big.qcow2')));
    rmSync(join(local, 'big.qcow2'));
  });

  test('bad downloads: unknown file, existing file, bad names, a full disk; none leaves a record or a file', async () => {
    const repo = new MemoryTransferRepo();
    const tm = new TransferManager({ repo, ops: memoryOps(), log: quiet });
    await assert.rejects(tm.startDownload({ server: daemon.server, file: 'none.qcow2', destDir: local, wallet: 'w' }), /image:none.qcow2 not exist/);
    for (const bad of ['../big.qcow2', '-rf.qcow2', 'a b.qcow2', 'x.img', '.hidden.qcow2']) {
      await assert.rejects(tm.startDownload({ server: daemon.server, file: bad, destDir: local, wallet: 'w' }), /image_filename is invalid/, bad);
    }
    // a sparse image on the centre, 1 GiB larger than the free space here
    const huge = join(daemon.path, 'huge.qcow2');
    writeFileSafe(huge, '');
    truncateSync(huge, freeBytes(local) + 1024 * MiB);
    const err = await tm.startDownload({ server: daemon.server, file: 'huge.qcow2', destDir: local, wallet: 'w' }).catch((e: unknown) => e);
    assert.ok(err instanceof DbcError && /have no enough space/.test(err.message), String(err));
    rmSync(huge);
    writeFileSafe(join(local, 'here.qcow2'), 'x');
    writeFileSafe(join(daemon.path, 'here.qcow2'), 'y');
    await assert.rejects(tm.startDownload({ server: daemon.server, file: 'here.qcow2', destDir: local, wallet: 'w' }), /image file:here.qcow2 already exist/);
    assert.equal(repo.transfersOf('download', 'huge.qcow2').length + repo.transfersOf('download', 'none.qcow2').length, 0);
    assert.equal(existsSync(stagingPathOf(join(local, 'huge.qcow2'), 'huge.qcow2')), false);
    rmSync(join(local, 'here.qcow2'));
    rmSync(join(daemon.path, 'here.qcow2'));
  });

  test('an image that shrinks on the centre during the download fails and leaves no partial file', async () => {
    const src = join(daemon.path, 'shrinks.qcow2');
    randomFile(src, 16 * MiB);
    const tm = new TransferManager({ repo: new MemoryTransferRepo(), ops: memoryOps(), log: quiet, bwlimitKiB: 2048, progressIntervalMs: 100 });
    const row = await tm.startDownload({ server: daemon.server, file: 'shrinks.qcow2', destDir: local, wallet: 'w' });
    await until('some data', () => tm.get(row.id)!.done_bytes > 2 * MiB);
    truncateSync(src, 4 * MiB);
    const ended = await tm.settled(row.id);
    assert.equal(ended?.status, 'failed');
    assert.ok(ended.error.length > 0);
    assert.equal(existsSync(join(local, 'shrinks.qcow2')), false);
    assert.equal(existsSync(stagingPathOf(join(local, 'shrinks.qcow2'), 'shrinks.qcow2')), false, 'partial removed');
    rmSync(src);
  });

  test('a file that vanishes from the centre before rsync reads it: failed, no partial file', async (t) => {
    const src = join(daemon.path, 'gone.qcow2');
    randomFile(src, MiB);
    const tm = new TransferManager({ repo: new MemoryTransferRepo(), ops: memoryOps(), log: quiet });
    // remove it between the check and the copy: the finaliser runs after the copy, so use a listener-free race:
    // start, and remove at once (rsync needs a few ms to connect)
    const started = tm.startDownload({ server: daemon.server, file: 'gone.qcow2', destDir: local, wallet: 'w' });
    const row = await started;
    rmSync(src);
    const ended = await tm.settled(row.id);
    if (ended?.status === 'done') {
      // rsync was faster than the unlink: nothing to check for this run
      t.diagnostic('rsync copied the file before it vanished');
      rmSync(join(local, 'gone.qcow2'));
      return;
    }
    assert.equal(ended?.status, 'failed', ended?.error);
    assert.match(ended.error, /No such file|vanished|link_stat|changed/);
    assert.equal(existsSync(join(local, 'gone.qcow2')), false);
    assert.equal(existsSync(stagingPathOf(join(local, 'gone.qcow2'), 'gone.qcow2')), false);
  });

  test('upload: progress, stop, resume from the centre partial dir, checksum equal; never a partial under the final name', async () => {
    const src = join(local, 'up.qcow2');
    randomFile(src, SIZE);
    const tm = new TransferManager({ repo: new MemoryTransferRepo(), ops: memoryOps(), log: quiet, bwlimitKiB: 4096, progressIntervalMs: 100, secrets });
    const row = await tm.startUpload({ server: daemon.server, localPath: src, file: 'up.qcow2', wallet: 'w' });
    await assert.rejects(tm.startUpload({ server: daemon.server, localPath: src, file: 'up.qcow2', wallet: 'w' }), /image:up.qcow2 in uploading/);
    await until('upload progress', () => tm.get(row.id)!.done_bytes >= 8 * MiB, 30_000);
    assert.equal(existsSync(join(daemon.path, 'up.qcow2')), false, 'the centre never shows a partial upload under its name');
    const stopped = await tm.stop('upload', 'up.qcow2');
    assert.equal(stopped.status, 'stopped');
    assert.ok(existsSync(join(daemon.path, '.dbc-partial', 'up.qcow2')), 'partial kept in the hidden partial dir');
    assert.equal(
      (await listImages(daemon.server)).some((f) => f.name === 'up.qcow2'),
      false,
    );
    const tm2 = new TransferManager({ repo: new MemoryTransferRepo(), ops: memoryOps(), log: quiet, secrets });
    const again = await tm2.startUpload({ server: daemon.server, localPath: src, file: 'up.qcow2', wallet: 'w' });
    const done = await tm2.settled(again.id);
    assert.equal(done?.status, 'done', done?.error);
    assert.equal(done?.done_bytes, SIZE);
    assert.equal(sha256(join(daemon.path, 'up.qcow2')), sha256(src));
    await assert.rejects(tm2.startUpload({ server: daemon.server, localPath: src, file: 'up.qcow2', wallet: 'w' }), /already exist/);
    await assert.rejects(
      tm2.startUpload({ server: daemon.server, localPath: join(local, 'none.qcow2'), file: 'none.qcow2', wallet: 'w' }),
      /image file:none.qcow2 is not exist/,
    );
  });

  test('a node restart resumes transfers: after a clean shutdown, and after a crash that left rsync running', async () => {
    const db = openDb(join(dir, 'node.db'));
    try {
      const store = new TaskStore(db);
      // each TransferManager is one daemon's: a fresh operations layer over the same store
      const ops = () => new Operations(store, new EventBus(quietLogger), quietLogger);
      // clean shutdown: the record says interrupted/node shutdown; the next start continues it
      const tm = new TransferManager({ repo: store, ops: ops(), log: quiet, bwlimitKiB: 4096, progressIntervalMs: 100 });
      const row = await tm.startDownload({ server: daemon.server, file: 'big.qcow2', destDir: local, wallet: 'w' });
      await until('some data', () => store.transfer(row.id)!.done_bytes > 4 * MiB);
      await tm.close();
      assert.deepEqual([store.transfer(row.id)!.status, store.transfer(row.id)!.error], ['interrupted', 'node shutdown']);
      assert.equal(store.operation(row.operation_id)!.status, 'running');
      const tm2 = new TransferManager({ repo: store, ops: ops(), log: quiet, progressIntervalMs: 100 });
      await tm2.init();
      assert.equal((await tm2.settled(row.id))?.status, 'done');
      assert.equal(store.operation(row.operation_id)!.status, 'done');
      assert.equal(sha256(join(local, 'big.qcow2')), sha256(join(daemon.path, 'big.qcow2')));
      rmSync(join(local, 'big.qcow2'));

      // crash: the record still says running and an orphaned rsync writes the partial file; init kills it first
      const tm3 = new TransferManager({ repo: store, ops: ops(), log: quiet, bwlimitKiB: 2048, progressIntervalMs: 100 });
      const row3 = await tm3.startDownload({ server: daemon.server, file: 'big.qcow2', destDir: local, wallet: 'w' });
      const staging = stagingPathOf(join(local, 'big.qcow2'), 'big.qcow2');
      await until('some data', () => sizeOf(staging) > 2 * MiB);
      await tm3.stop('download', 'big.qcow2');
      const orphan = spawn('rsync', ['--append-verify', '--bwlimit=512', rsyncUrl(daemon.server, 'big.qcow2'), staging], { stdio: 'ignore' });
      const orphanGone = new Promise((r) => orphan.once('exit', r));
      store.updateTransfer(row3.id, { status: 'running', pid: orphan.pid! });
      const tm4 = new TransferManager({ repo: store, ops: ops(), log: quiet, progressIntervalMs: 100 });
      await tm4.init();
      await orphanGone;
      assert.equal((await tm4.settled(row3.id))?.status, 'done');
      assert.equal(sha256(join(local, 'big.qcow2')), sha256(join(daemon.path, 'big.qcow2')));
      rmSync(join(local, 'big.qcow2'));
    } finally {
      db.close();
    }
  });

  test('an unknown module or a closed port fails clearly', async () => {
    const tm = new TransferManager({ repo: new MemoryTransferRepo(), ops: memoryOps(), log: quiet, connectTimeoutS: 3 });
    await assert.rejects(
      tm.startDownload({ server: { ...daemon.server, module: 'nomodule' }, file: 'big.qcow2', destDir: local, wallet: 'w' }),
      /list image_server failed: the image server refused the transfer$/,
    );
    await assert.rejects(
      tm.startDownload({ server: { ...daemon.server, port: 1 }, file: 'big.qcow2', destDir: local, wallet: 'w' }),
      /list image_server failed: the image server is unreachable$/,
    );
  });

  // issue 10, finding 2: the centre was an anonymous, writable module
  test('the centre: anonymous uploads refused (file unchanged), anonymous list and download work, authenticated uploads work', async () => {
    const seed = join(daemon.path, 'seed.qcow2');
    randomFile(seed, MiB);
    const before = sha256(seed);
    const junk = join(local, 'junk.qcow2');
    randomFile(junk, MiB);
    const url = (module: string, file: string) => `rsync://${daemon.server.host}:${daemon.server.port}/${module}/${file}`;
    const env = { ...process.env, RSYNC_PASSWORD: undefined };
    // the attack of the issue: overwrite in place, anonymously
    const inplace = spawnSync('rsync', ['--inplace', junk, url(daemon.server.module, 'seed.qcow2')], { encoding: 'utf8', env });
    assert.notEqual(inplace.status, 0, 'anonymous write refused');
    const fresh = spawnSync('rsync', [junk, url(daemon.server.module, 'new.qcow2')], { encoding: 'utf8', env });
    assert.notEqual(fresh.status, 0, 'anonymous new file refused');
    // the upload module needs the password
    const anonUp = spawnSync('rsync', ['--inplace', junk, url(daemon.upload.uploadModule, 'seed.qcow2')], { encoding: 'utf8', env, input: '' });
    assert.notEqual(anonUp.status, 0);
    const wrong = spawnSync(
      'rsync',
      [junk, `rsync://${daemon.upload.user}@${daemon.server.host}:${daemon.server.port}/${daemon.upload.uploadModule}/new.qcow2`],
      {
        encoding: 'utf8',
        env: { ...env, RSYNC_PASSWORD: 'wrong' },
      },
    );
    assert.notEqual(wrong.status, 0);
    assert.match(wrong.stderr, /auth failed/);
    // in place, even with the password: refused by the module
    const authInplace = spawnSync(
      'rsync',
      [
        '--inplace',
        `--password-file=${daemon.upload.passwordFile}`,
        junk,
        `rsync://${daemon.upload.user}@${daemon.server.host}:${daemon.server.port}/${daemon.upload.uploadModule}/seed.qcow2`,
      ],
      { encoding: 'utf8', env },
    );
    assert.notEqual(authInplace.status, 0);
    assert.equal(sha256(seed), before, 'the centre file is unchanged');
    assert.equal(existsSync(join(daemon.path, 'new.qcow2')), false);
    assert.equal(statSync(daemon.upload.passwordFile).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'centre', 'rsyncd.secrets')).mode & 0o777, 0o600);

    // anonymous listing and download keep working
    assert.ok((await listImages(daemon.server)).some((f) => f.name === 'seed.qcow2'));
    const get = spawnSync('rsync', [url(daemon.server.module, 'seed.qcow2'), join(local, 'got.qcow2')], { encoding: 'utf8', env });
    assert.equal(get.status, 0, get.stderr);
    assert.equal(sha256(join(local, 'got.qcow2')), before);

    // the TransferManager without credentials is refused with a short text (no rsync stderr)
    const anon = new TransferManager({ repo: new MemoryTransferRepo(), ops: memoryOps(), log: quiet });
    await assert.rejects(anon.startUpload({ server: daemon.server, localPath: junk, file: 'junk.qcow2', wallet: 'w' }), (err: Error) => {
      assert.equal(err.message, 'upload to image_server failed: the image server refused the transfer');
      return true;
    });
    // with them it uploads; the password is on no command line and in no record
    const password = readFileSync(daemon.upload.passwordFile, 'utf8').trim();
    const repo = new MemoryTransferRepo();
    const tm = new TransferManager({ repo, ops: memoryOps(), log: quiet, secrets, bwlimitKiB: 256, progressIntervalMs: 50 });
    const row = await tm.startUpload({ server: daemon.server, localPath: junk, file: 'junk.qcow2', wallet: 'a' });
    const pid = await until('rsync pid', () => tm.get(row.id)!.pid || undefined);
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    assert.ok(argv.includes('--password-file='), argv);
    assert.equal(argv.includes(password), false, 'the password is not in the argv');
    assert.equal(readFileSync(`/proc/${pid}/environ`, 'utf8').includes(password), false, 'nor in the environment');
    // issue 10, finding 5: another wallet cannot stop it (the same answer as for no transfer)
    await assert.rejects(tm.stop('upload', 'junk.qcow2', 'b'), /image:junk.qcow2 is not in uploading/);
    await assert.rejects(tm.stop('upload', 'none.qcow2', 'b'), /image:none.qcow2 is not in uploading/);
    assert.equal(tm.latest('upload', 'junk.qcow2', 'b'), undefined);
    assert.equal(tm.latest('upload', 'junk.qcow2', 'a')?.id, row.id);
    const done = await tm.settled(row.id);
    assert.equal(done?.status, 'done', done?.error);
    assert.equal(JSON.stringify(done).includes(password), false);
    assert.equal(sha256(join(daemon.path, 'junk.qcow2')), sha256(junk));
    // --ignore-existing: never an overwrite, even authenticated
    await assert.rejects(tm.startUpload({ server: daemon.server, localPath: seed, file: 'junk.qcow2', wallet: 'a' }), /already exist/);
  });
});

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

function writeFileSafe(path: string, text: string): void {
  const fd = openSync(path, 'w');
  writeSync(fd, text);
  closeSync(fd);
}
