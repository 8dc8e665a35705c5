// tasks/logs: lines of a VM's serial console log (the file QEMU appends to across boots), cleaned of terminal
// escapes and control characters, head or tail, within the API docs' 1024-byte cap.
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { NodeErrors } from '../errors/index.js';

const WINDOW = 64 * 1024;

/** at most `lines` lines and `maxBytes` bytes from the head or the tail of the log file */
export function consoleLines(file: string, flag: 'head' | 'tail', lines: number, maxBytes = 1024): string[] {
  if (!existsSync(file)) throw NodeErrors.logNotExist();
  const size = statSync(file).size;
  const start = flag === 'head' ? 0 : Math.max(0, size - WINDOW);
  const len = Math.min(WINDOW, size - start);
  const buf = Buffer.alloc(len);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, buf, 0, len, start);
  } finally {
    closeSync(fd);
  }
  let all = buf
    .toString('utf8')
    // eslint-disable-next-line no-control-regex
    .replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1bc/g, '')
    .split('\n')
    // eslint-disable-next-line no-control-regex
    .map((l) => l.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '').trimEnd());
  if (flag === 'tail' && start > 0) all = all.slice(1); // the first line may be cut
  if (all.length > 0 && all[all.length - 1] === '') all.pop();
  const picked = flag === 'head' ? all.slice(0, lines) : all.slice(-lines);
  const out: string[] = [];
  let bytes = 0;
  // keep the lines nearest to the start (head) or the end (tail) within the byte cap
  const ordered = flag === 'head' ? picked : [...picked].reverse();
  for (const line of ordered) {
    const n = Buffer.byteLength(line) + 1;
    if (bytes + n > maxBytes) break;
    bytes += n;
    out.push(line);
  }
  return flag === 'head' ? out : out.reverse();
}

/** the whole log (tests, diagnostics) */
export function consoleText(file: string): string {
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}
