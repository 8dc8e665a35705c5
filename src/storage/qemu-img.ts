// A thin wrapper around qemu-img. Every path is checked before it reaches the command line: absolute, a plain
// character set, no `..`, so a task id or image name can never smuggle an option or escape the data dir.
import { execFile } from 'node:child_process';

export interface QemuImgInfo {
  /** bytes the guest sees */
  virtualSize: number;
  /** bytes the file takes on the host */
  actualSize: number;
  format: string;
  /** as written in the image header (may be relative to the image) */
  backingFile?: string;
  /** resolved by qemu-img */
  fullBackingFile?: string;
  backingFormat?: string;
}

export interface QemuImgCheck {
  ok: boolean;
  /** qemu-img check exit status: 0 clean, 2 corruptions, 3 leaked clusters only */
  status: number;
  output: string;
}

export class QemuImgError extends Error {
  constructor(
    readonly args: readonly string[],
    readonly stderr: string,
    readonly exitCode: number | null,
    readonly stdout = '',
  ) {
    super(`qemu-img ${args[0] ?? ''} failed: ${stderr.trim() || `exit ${exitCode}`}`);
    this.name = 'QemuImgError';
  }
}

const SAFE_PATH = /^[A-Za-z0-9._/-]+$/;

export function assertSafeImagePath(path: string): string {
  if (typeof path !== 'string' || !path.startsWith('/') || !SAFE_PATH.test(path) || path.split('/').includes('..')) {
    throw new Error(`unsafe image path: ${JSON.stringify(path)}`);
  }
  return path;
}

function assertSizeGiB(sizeGiB: number): number {
  if (!Number.isInteger(sizeGiB) || sizeGiB < 1 || sizeGiB > 1024 * 1024) {
    throw new Error(`invalid disk size: ${sizeGiB} GiB`);
  }
  return sizeGiB;
}

/** one qemu-img call (argument array); failures as QemuImgError with stderr and the exit code */
export function runQemuImg(args: string[], opts: { bin?: string; timeoutMs?: number } = {}): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(opts.bin ?? 'qemu-img', args, { timeout: opts.timeoutMs ?? 60_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        const code = typeof (err as NodeJS.ErrnoException).code === 'number' ? Number(err.code) : null;
        reject(new QemuImgError(args, stderr || err.message, code, stdout));
        return;
      }
      resolve({ stdout, stderr });
    });
  });
}

export interface QemuImgOptions {
  /** binary to run; default `qemu-img` from PATH */
  bin?: string;
  /** per-call limit; a convert of a large image needs more */
  timeoutMs?: number;
}

export class QemuImg {
  private readonly bin: string;
  private readonly timeoutMs: number;

  constructor(opts: QemuImgOptions = {}) {
    this.bin = opts.bin ?? 'qemu-img';
    this.timeoutMs = opts.timeoutMs ?? 60_000;
  }

  private run(args: string[], timeoutMs = this.timeoutMs): Promise<{ stdout: string; stderr: string }> {
    return runQemuImg(args, { bin: this.bin, timeoutMs });
  }

  /** qcow2 overlay on a qcow2 base: constant time, the base is never copied. Optional larger virtual size. */
  async createOverlay(base: string, overlay: string, sizeGiB?: number): Promise<void> {
    const args = ['create', '-q', '-f', 'qcow2', '-b', assertSafeImagePath(base), '-F', 'qcow2', assertSafeImagePath(overlay)];
    if (sizeGiB !== undefined) args.push(`${assertSizeGiB(sizeGiB)}G`);
    await this.run(args);
  }

  async createDisk(path: string, sizeGiB: number): Promise<void> {
    await this.run(['create', '-q', '-f', 'qcow2', assertSafeImagePath(path), `${assertSizeGiB(sizeGiB)}G`]);
  }

  /** -U: readable while a running QEMU holds the image lock */
  async info(path: string): Promise<QemuImgInfo> {
    const { stdout } = await this.run(['info', '-U', '--output=json', assertSafeImagePath(path)]);
    const j = JSON.parse(stdout) as Record<string, unknown>;
    const info: QemuImgInfo = {
      virtualSize: Number(j['virtual-size']),
      actualSize: Number(j['actual-size'] ?? 0),
      format: String(j['format']),
    };
    if (typeof j['backing-filename'] === 'string') info.backingFile = j['backing-filename'];
    if (typeof j['full-backing-filename'] === 'string') info.fullBackingFile = j['full-backing-filename'];
    if (typeof j['backing-filename-format'] === 'string') info.backingFormat = j['backing-filename-format'];
    return info;
  }

  /** grow only: shrinking a guest disk would cut its filesystem */
  async resize(path: string, newSizeGiB: number): Promise<void> {
    await this.run(['resize', '-q', assertSafeImagePath(path), `${assertSizeGiB(newSizeGiB)}G`]);
  }

  /** copy src to a new qcow2; with `backing` only the clusters that differ from it are written */
  async convert(src: string, dst: string, opts: { backing?: string; timeoutMs?: number } = {}): Promise<void> {
    const args = ['convert', '-f', 'qcow2', '-O', 'qcow2'];
    if (opts.backing !== undefined) args.push('-B', assertSafeImagePath(opts.backing), '-F', 'qcow2');
    args.push(assertSafeImagePath(src), assertSafeImagePath(dst));
    await this.run(args, opts.timeoutMs ?? Math.max(this.timeoutMs, 30 * 60_000));
  }

  /** exit 2/3 are findings, not failures of the tool: report them instead of throwing */
  async check(path: string): Promise<QemuImgCheck> {
    const args = ['check', '-U', assertSafeImagePath(path)];
    try {
      const { stdout } = await this.run(args);
      return { ok: true, status: 0, output: stdout };
    } catch (err) {
      if (err instanceof QemuImgError && (err.exitCode === 2 || err.exitCode === 3)) {
        return { ok: false, status: err.exitCode, output: `${err.stdout}${err.stderr}` };
      }
      throw err;
    }
  }
}

const defaultQemuImg = new QemuImg();
export const createOverlay = (base: string, overlay: string, sizeGiB?: number) => defaultQemuImg.createOverlay(base, overlay, sizeGiB);
export const createDisk = (path: string, sizeGiB: number) => defaultQemuImg.createDisk(path, sizeGiB);
export const info = (path: string) => defaultQemuImg.info(path);
export const resize = (path: string, newSizeGiB: number) => defaultQemuImg.resize(path, newSizeGiB);
export const convert = (src: string, dst: string, opts?: { backing?: string; timeoutMs?: number }) => defaultQemuImg.convert(src, dst, opts);
export const check = (path: string) => defaultQemuImg.check(path);
