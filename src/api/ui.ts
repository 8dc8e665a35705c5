// The renter's web page (ui/, built into dist/ui by scripts/build-ui.mjs): GET / redirects to /ui/, GET /ui/<file>
// serves the files the build wrote, read once at start (an allowlist: nothing in the request names a path on disk).
// On `dbc up` only, GET /ui/devnet.json gives a loopback browser the demo renter's key, as ~/.dbc/devnet.json does.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';

export interface UiOptions {
  /** the built page (dist/ui) */
  dir: string;
  /** `dbc up`'s demo renter: offered to loopback browsers */
  devnet?: { node_id: string; wallet: string; seed: string };
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.map': 'application/json',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
};

export interface UiFile {
  body: Buffer;
  type: string;
}

export class UiFiles {
  private readonly files = new Map<string, UiFile>();

  constructor(private readonly o: UiOptions) {
    if (!existsSync(o.dir)) return;
    const walk = (dir: string, prefix: string) => {
      for (const name of readdirSync(dir)) {
        const full = join(dir, name);
        if (statSync(full).isDirectory()) walk(full, `${prefix}${name}/`);
        else if (TYPES[extname(name)]) this.files.set(`${prefix}${name}`, { body: readFileSync(full), type: TYPES[extname(name)]! });
      }
    };
    walk(o.dir, '');
  }

  get built(): boolean {
    return this.files.has('index.html');
  }

  /** the file for a path under /ui/ ('' is index.html), or undefined */
  get(path: string, remoteIp: string): UiFile | undefined {
    const name = path === '' ? 'index.html' : path;
    if (name === 'devnet.json') {
      const d = this.o.devnet;
      if (!d || !isLoopback(remoteIp)) return undefined;
      return { body: Buffer.from(JSON.stringify(d)), type: TYPES['.json']! };
    }
    return this.files.get(name);
  }
}

export function isLoopback(ip: string): boolean {
  return ip === '127.0.0.1' || ip === '::1' || ip === '::ffff:127.0.0.1';
}
