// Upload credentials for image centres (issue 10, finding 2). A centre's download module is read-only and
// anonymous; uploads go to a module with rsync `auth users`. The uploading side (the GPU node for relayed uploads
// and snapshots, the client for its own uploads) holds the credentials from its own configuration, matched by the
// centre's host:port/module; they never travel in a request. rsync reads the password from a file
// (--password-file), never from its command line.
import { isIP } from 'node:net';
import type { ImageServer } from './servers.js';

export interface UploadCredential {
  /** rsync user (`auth users` of the centre) */
  user: string;
  /** a file holding only the password (0600) */
  passwordFile: string;
  /** the module uploads go to (default: the centre's own module) */
  uploadModule: string;
}

const USER_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;
const MODULE_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

function keyOf(host: string, port: number, module: string): string {
  return `${host.toLowerCase()}:${port}/${module}`;
}

/**
 * `host:port/module=[upload_module/]user:/path/to/password-file` (the --image-server-secret flag; IPv6 hosts in
 * brackets). `module` is the centre's public module, as in `image_server=ID,host,port,module`.
 */
export function parseImageServerSecret(text: string): { host: string; port: number; module: string; cred: UploadCredential } {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})\/([^=/]+)=(?:([^/:=]+)\/)?([^/:=]+):(\/.*)$/.exec(text.trim());
  const bad = () => new Error(`--image-server-secret ${JSON.stringify(text)}: expected host:port/module=[upload_module/]user:/path/to/password-file`);
  if (!m) throw bad();
  const host = m[1]!.replace(/^\[|\]$/g, '');
  const port = Number(m[2]);
  const module = m[3]!;
  const user = m[5]!;
  if (!(port >= 1 && port <= 65535) || !MODULE_RE.test(module) || !USER_RE.test(user)) throw bad();
  if (m[4] !== undefined && !MODULE_RE.test(m[4])) throw bad();
  if (m[1]!.startsWith('[') && isIP(host) !== 6) throw bad();
  return { host, port, module, cred: { user, passwordFile: m[6]!, uploadModule: m[4] ?? module } };
}

/** the credentials this process holds, by centre */
export class ImageServerSecrets {
  private readonly byKey = new Map<string, UploadCredential>();

  set(server: Pick<ImageServer, 'host' | 'port' | 'module'>, cred: UploadCredential): void {
    this.byKey.set(keyOf(server.host, server.port, server.module), { ...cred });
  }

  add(text: string): void {
    const p = parseImageServerSecret(text);
    this.set(p, p.cred);
  }

  for(server: Pick<ImageServer, 'host' | 'port' | 'module'>): UploadCredential | undefined {
    return this.byKey.get(keyOf(server.host, server.port, server.module));
  }
}
