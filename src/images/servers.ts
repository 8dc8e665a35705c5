// Image centres: rsync daemons, configured on the client as the original's `image_server=ID,host,port,module`
// (dbc-docs §8.3; the Chinese docs show a 5-field variant `ID,host,sshport,port,module`, accepted too).
import { isIP } from 'node:net';
import type { ImageServerSpec } from '../protocol/types.js';

export type ImageServer = ImageServerSpec;

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const MODULE_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const HOSTNAME_RE = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export function isValidHost(host: unknown): host is string {
  return typeof host === 'string' && (isIP(host) !== 0 || HOSTNAME_RE.test(host));
}

/** the shape check the GPU node runs on what a client shipped (never trust the wire) */
export function validImageServer(v: unknown): ImageServer | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  const port = o.port;
  if (typeof o.id !== 'string' || !ID_RE.test(o.id)) return undefined;
  if (!isValidHost(o.host)) return undefined;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  if (typeof o.module !== 'string' || !MODULE_RE.test(o.module)) return undefined;
  return { id: o.id, host: o.host, port, module: o.module };
}

/** `ID,host,port,module` (or `ID,host,sshport,port,module`); throws with a readable reason */
export function parseImageServer(text: string): ImageServer {
  const parts = text.split(',').map((p) => p.trim());
  let id: string | undefined;
  let host: string | undefined;
  let port: string | undefined;
  let module: string | undefined;
  if (parts.length === 4) [id, host, port, module] = parts;
  else if (parts.length === 5) [id, host, , port, module] = parts;
  else throw new Error(`image server ${JSON.stringify(text)}: expected ID,host,port,module`);
  if (!/^\d{1,5}$/.test(port ?? '')) throw new Error(`image server ${JSON.stringify(text)}: port is not a number`);
  const s = validImageServer({ id, host, port: Number(port), module });
  if (!s) throw new Error(`image server ${JSON.stringify(text)}: invalid id, host, port or module`);
  return s;
}

export function formatImageServer(s: ImageServer): string {
  return `${s.id},${s.host},${s.port},${s.module}`;
}

/** rsync://host:port/module/[file] (IPv6 in brackets) */
export function rsyncUrl(s: ImageServer, file = '', auth?: { user: string; module: string }): string {
  const host = isIP(s.host) === 6 ? `[${s.host}]` : s.host;
  if (auth) return `rsync://${auth.user}@${host}:${s.port}/${auth.module}/${file}`;
  return `rsync://${host}:${s.port}/${s.module}/${file}`;
}

/** the client's configured centres, by id; a later entry with the same id replaces an earlier one */
export class ImageServerRegistry {
  private readonly byId = new Map<string, ImageServer>();

  constructor(servers: Iterable<ImageServer> = []) {
    for (const s of servers) this.add(s);
  }

  add(s: ImageServer): void {
    this.byId.set(s.id, s);
  }

  get(id: string): ImageServer | undefined {
    return this.byId.get(id);
  }

  ids(): string[] {
    return [...this.byId.keys()];
  }

  list(): ImageServer[] {
    return [...this.byId.values()];
  }
}
