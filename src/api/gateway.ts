// The client gateway as `dbc up` and `dbc client` both run it: the image centres (--image-server, their upload
// credentials, the optional local rsync centre), the client-local images forms, and the HTTP API (OpenAPI, peers,
// limits, auth budget, request timeout) in front of a NodeTransport. Each role passes its transport and what differs
// (dbc up: the node's own check_authority for local uploads and its task disks; dbc client: an upload allowlist).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Authenticator } from '../auth/authenticator.js';
import { accountKeyHex, cryptoReady } from '../auth/verify.js';
import { AuthErrors } from '../errors/index.js';
import { ClientImages } from '../images/client.js';
import { startRsyncDaemon, type RsyncDaemon } from '../images/daemon.js';
import { ImageServerSecrets, parseImageServerSecret } from '../images/secrets.js';
import { parseImageServer, type ImageServer } from '../images/servers.js';
import type { DbcBody, NodeTransport } from '../protocol/types.js';
import { openDb } from '../store/db.js';
import type { Logger } from '../util/logger.js';
import type { AuthBudgetOptions } from './auth-budget.js';
import { buildApi, type HttpLimits } from './server.js';
import type { UiOptions } from './ui.js';

export interface ImageCentreOptions {
  /** image centres `ID,host,port,module` (the original's image_server=) */
  imageServers?: string[];
  /** upload credentials `host:port/module=[upload_module/]user:/path/to/password-file` (docs/storage.md) */
  imageServerSecrets?: string[];
  /** start a local centre (rsync daemon on DIR/image-server/) registered as the first free ID_n */
  localImageServer?: boolean;
  /** where the local centre keeps its module directory and rsyncd files */
  dataDir: string;
  /** its listen address */
  host: string;
  /** the address nodes use to reach it (default: host, 127.0.0.1 for 0.0.0.0) */
  advertise?: string;
  /** files placed in the local centre at start (dbc up: the base image) */
  seed?: string[];
}

/** the centres the gateway knows (the local one first) and the upload credentials this process holds */
export interface ImageCentres {
  servers: ImageServer[];
  secrets: ImageServerSecrets;
  daemon?: RsyncDaemon;
  /** stops the local centre */
  close(): Promise<void>;
}

/** the address peers are told for a listen address */
export function advertised(host: string): string {
  return host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
}

/**
 * Parses the flags (a bad one throws before anything starts) and starts the local centre. Done before the GPU node
 * starts in `dbc up`: the node holds the same credentials (it resumes interrupted uploads).
 */
export async function startImageCentres(o: ImageCentreOptions): Promise<ImageCentres> {
  const configured = (o.imageServers ?? []).map(parseImageServer);
  for (const t of o.imageServerSecrets ?? []) parseImageServerSecret(t);
  let daemon: RsyncDaemon | undefined;
  if (o.localImageServer) {
    const taken = new Set(configured.map((s) => s.id));
    let n = 1;
    while (taken.has(`ID_${n}`)) n++;
    daemon = await startRsyncDaemon({ dir: o.dataDir, id: `ID_${n}`, host: o.host, advertise: o.advertise ?? advertised(o.host), seed: o.seed });
  }
  const secrets = new ImageServerSecrets();
  for (const t of o.imageServerSecrets ?? []) secrets.add(t);
  if (daemon) secrets.set(daemon.server, daemon.upload);
  const d = daemon;
  return { servers: [...(d ? [d.server] : []), ...configured], secrets, daemon: d, close: async () => d?.stop() };
}

export interface GatewayOptions {
  /** how NodeRequests reach GPU nodes (in process for dbc up, libp2p for dbc client) */
  transport: NodeTransport;
  host: string;
  httpPort: number;
  centres: ImageCentres;
  /** the gateway host's image directory (what `/data/<name>` means for a client-local upload) */
  localImageDir: string;
  log?: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** who may use the client-local upload forms; absent: they are refused (`this route needs ...`) */
  authenticate?: (body: DbcBody) => string | Promise<string>;
  /** true for a renter's disk: never uploaded from here */
  isTaskDisk?: (file: string) => boolean;
  /** how long to wait for a GPU node (default 30 s) */
  requestTimeoutMs?: number;
  http?: Partial<HttpLimits>;
  authBudget?: Partial<AuthBudgetOptions>;
  /** the web page (api/ui.ts) */
  ui?: UiOptions;
}

export interface Gateway {
  app: FastifyInstance;
  /** http://host:port, as a client reaches it */
  url: string;
  images: ClientImages;
  /** closes the HTTP server and the gateway's own uploads (not the centres: their owner stops them) */
  close(): Promise<void>;
}

export async function startGateway(o: GatewayOptions): Promise<Gateway> {
  mkdirSync(o.localImageDir, { recursive: true });
  const images = new ClientImages({
    servers: o.centres.servers,
    localDir: o.localImageDir,
    log: o.log,
    secrets: o.centres.secrets,
    authenticate: o.authenticate,
    isTaskDisk: o.isTaskDisk,
  });
  const app = await buildApi({
    transport: o.transport,
    logger: false,
    images,
    requestTimeoutMs: o.requestTimeoutMs,
    http: o.http,
    authBudget: o.authBudget,
    ui: o.ui,
  });
  try {
    await app.listen({ port: o.httpPort, host: o.host });
  } catch (err) {
    await images.close();
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : o.httpPort;
  const host = advertised(o.host);
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  return {
    app,
    url,
    images,
    close: async () => {
      await app.close();
      await images.close();
    },
  };
}

/**
 * `dbc client`'s check for its local upload forms: a wallet signature over a single-use nonce (kept in DIR/client.db
 * across restarts) from one of the allowed wallets (--upload-wallet). No sessions: they belong to a node's renters.
 */
export async function walletAllowlist(dataDir: string, wallets: string[]): Promise<{ authenticate: (body: DbcBody) => string; close(): void }> {
  await cryptoReady();
  const allowed = new Set<string>();
  for (const w of wallets) {
    const key = accountKeyHex(w);
    if (!key) throw new Error(`--upload-wallet ${JSON.stringify(w)}: not a wallet address`);
    allowed.add(key);
  }
  mkdirSync(dataDir, { recursive: true });
  const db = openDb(join(dataDir, 'client.db'));
  const auth = new Authenticator(db);
  return {
    authenticate(body) {
      const pending = auth.verify(body, { allowSession: false });
      if (!pending) throw AuthErrors.noCredential();
      const key = accountKeyHex(pending.identity.account);
      // the nearest original text; the wallet is not one the gateway's operator allowed
      if (!key || !allowed.has(key)) throw AuthErrors.walletNotRented();
      pending.commit();
      return pending.identity.account;
    },
    close: () => db.close(),
  };
}
