// qemu-img calls the storage features need beyond storage/qemu-img.ts: the raw info JSON (external data files),
// relative rebase, grow by an increment, and convert with progress. Argument arrays only; paths are checked.
import { spawn } from 'node:child_process';
import { assertSafeImagePath, QemuImgError, runQemuImg } from './qemu-img.js';

async function run(args: string[], timeoutMs = 120_000): Promise<string> {
  return (await runQemuImg(args, { timeoutMs })).stdout;
}

export interface ImageFacts {
  format: string;
  virtualSize: number;
  actualSize: number;
  /** as written in the header */
  backingFile?: string;
  backingFormat?: string;
  /** qcow2 external data file (refused for images from elsewhere: it can name any host file) */
  dataFile?: string;
}

/** qemu-img info -U (readable while a VM runs); never opens the backing chain */
export async function imageFacts(path: string): Promise<ImageFacts> {
  const j = JSON.parse(await run(['info', '-U', '--output=json', assertSafeImagePath(path)])) as Record<string, unknown>;
  const facts: ImageFacts = {
    format: String(j['format']),
    virtualSize: Number(j['virtual-size']),
    actualSize: Number(j['actual-size'] ?? 0),
  };
  if (typeof j['backing-filename'] === 'string') facts.backingFile = j['backing-filename'];
  if (typeof j['backing-filename-format'] === 'string') facts.backingFormat = j['backing-filename-format'];
  const spec = j['format-specific'] as { data?: Record<string, unknown> } | undefined;
  if (spec?.data && typeof spec.data['data-file'] === 'string') facts.dataFile = spec.data['data-file'];
  return facts;
}

/** point the image at a backing file name relative to its own directory, without reading any data (rebase -u) */
export async function rebaseUnsafe(path: string, backingName: string): Promise<void> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(backingName)) throw new Error(`invalid backing file name: ${backingName}`);
  // -t unsafe: no flush on close. Only the header changes; a flush would wait for every dirty page of a file just
  // written by convert (which does not flush either), half a second per GiB.
  await run(['rebase', '-q', '-u', '-t', 'unsafe', '-f', 'qcow2', '-b', backingName, '-F', 'qcow2', assertSafeImagePath(path)]);
}

/** grow by incGiB (the original's `qemu-img resize <file> +<size>G` semantics); never shrinks */
export async function growBy(path: string, incGiB: number): Promise<void> {
  if (!Number.isInteger(incGiB) || incGiB < 1 || incGiB > 1024 * 1024) throw new Error(`invalid size increment: ${incGiB}`);
  await run(['resize', '-q', '-f', 'qcow2', assertSafeImagePath(path), `+${incGiB}G`]);
}

/**
 * qemu-img convert -p -f qcow2 -O qcow2 -B <backing> -F qcow2 <src> <dst>: only the clusters that differ from
 * backing are written (an incremental image). onProgress gets 0..100 as qemu-img reports it.
 */
export function convertIncremental(src: string, dst: string, backing: string, onProgress?: (percent: number) => void, signal?: AbortSignal): Promise<void> {
  const args = [
    'convert',
    '-p',
    '-f',
    'qcow2',
    '-O',
    'qcow2',
    '-B',
    assertSafeImagePath(backing),
    '-F',
    'qcow2',
    assertSafeImagePath(src),
    assertSafeImagePath(dst),
  ];
  return new Promise((resolve, reject) => {
    const child = spawn('qemu-img', args, { stdio: ['ignore', 'pipe', 'pipe'], signal });
    let stderr = '';
    let pending = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      pending += d;
      const parts = pending.split(/[\r\n]/);
      pending = parts.pop() ?? '';
      for (const p of parts) {
        const m = /\(\s*([\d.]+)\/100%\)/.exec(p);
        if (m) onProgress?.(Number(m[1]));
      }
    });
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8192)));
    child.once('error', (err) => reject(err));
    child.once('close', (code) => {
      if (code === 0) resolve();
      else reject(new QemuImgError(args, stderr || `exit ${code}`, code));
    });
  });
}
