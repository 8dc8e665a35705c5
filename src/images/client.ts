// The client gateway's side of images (original §2.7): its configured image centres, `image_server` ID resolution
// for requests it relays, and the routes it answers itself when peer_nodes_list is empty (a centre's list; upload,
// upload progress and stop from the client host's own image directory).
import { ClientErrors, StorageErrors } from '../errors/index.js';
import type { DbcBody, ImageServerSpec, RouteId } from '../protocol/types.js';
import { listLocalImages } from './local.js';
import { progressOf } from './node-images.js';
import { imageFilenameOf } from './names.js';
import { listEntry, listImages, publicRsyncReason, RsyncError } from './rsync.js';
import type { ImageServerSecrets } from './secrets.js';
import { ImageServerRegistry, type ImageServer } from './servers.js';
import { MemoryTransferRepo, TransferManager } from './transfers.js';
import { EventBus, MemoryOperationStore, Operations } from '../ops/index.js';
import { quietLogger, type Logger } from '../util/logger.js';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface ClientImagesOptions {
  servers: Iterable<ImageServer>;
  /** the client host's image directory (what `/data/<name>` means for a local upload) */
  localDir: string;
  log?: Pick<Logger, 'info' | 'warn' | 'error'>;
  bwlimitKiB?: number;
  /**
   * Who sends a local upload / progress / stop (issue 10, finding 4): the account of the body's credential
   * (wallet signature with a single-use nonce, or a session); throws the refusal. Without it those routes are
   * refused: a gateway never serves its files to strangers.
   */
  authenticate?: (body: DbcBody) => string | Promise<string>;
  /** true for a renter's disk (a name of the node's task store); such files never leave this host this way */
  isTaskDisk?: (file: string) => boolean;
  /** upload credentials for centres, by host:port/module */
  secrets?: ImageServerSecrets;
}

/** routes whose `additional.image_server` names a centre: 'required' ones refuse to go without one */
const IMAGE_SERVER_USE: Partial<Record<RouteId, 'optional' | 'required'>> = {
  'images.list': 'optional',
  'images.download': 'required',
  'images.upload': 'required',
  'snapshot.create': 'required',
  'mining_nodes.info': 'optional',
};

/** routes the client answers itself when peer_nodes_list is empty */
export const LOCAL_IMAGE_ROUTES: ReadonlySet<RouteId> = new Set<RouteId>(['images.list', 'images.upload', 'images.upload_progress', 'images.upload_stop']);

function idOf(additional: Record<string, unknown>): string | undefined {
  const v = additional.image_server;
  if (v === undefined || v === null || v === '' || v === 'undefined') return undefined;
  // eslint-disable-next-line @typescript-eslint/no-base-to-string -- any JSON value is named as String() writes it (the original's text)
  return typeof v === 'string' ? v : String(v);
}

export class ClientImages {
  readonly registry: ImageServerRegistry;
  readonly transfers: TransferManager;
  readonly localDir: string;
  private readonly authenticate?: (body: DbcBody) => string | Promise<string>;
  private readonly isTaskDisk: (file: string) => boolean;

  constructor(o: ClientImagesOptions) {
    this.registry = new ImageServerRegistry(o.servers);
    this.localDir = o.localDir;
    this.authenticate = o.authenticate;
    this.isTaskDisk = o.isTaskDisk ?? (() => false);
    // the gateway's own uploads run as operations too, kept in memory (it has no node database)
    const given = o.log;
    const log: Logger = given
      ? { info: (obj, msg) => given.info(obj, msg), warn: (obj, msg) => given.warn(obj, msg), error: (obj, msg) => given.error(obj, msg), debug() {} }
      : quietLogger;
    const ops = new Operations(new MemoryOperationStore(), new EventBus(log), log);
    this.transfers = new TransferManager({ repo: new MemoryTransferRepo(), ops, log, bwlimitKiB: o.bwlimitKiB, secrets: o.secrets });
  }

  private async caller(body: DbcBody | undefined): Promise<string> {
    if (!this.authenticate || !body) throw ClientErrors.credentialRequired();
    return this.authenticate(body);
  }

  /** `/images/servers`: `{"image_server": ["ID_1", ...]}` */
  serversMessage(): { image_server: string[] } {
    return { image_server: this.registry.ids() };
  }

  /**
   * The full centre for a relayed request (shipped in NodeRequest.image_server). Unknown ID -> 400
   * `image_server not exist`; none where the route needs one -> 400 `no image_server`.
   */
  resolveFor(route: RouteId, additional: Record<string, unknown>, local = false): ImageServerSpec | undefined {
    const use = local && route === 'images.list' ? 'required' : IMAGE_SERVER_USE[route];
    if (use === undefined) return undefined;
    const id = idOf(additional);
    if (id === undefined) {
      if (use === 'required') throw ClientErrors.noImageServer();
      return undefined;
    }
    const s = this.registry.get(id);
    if (!s) throw ClientErrors.imageServerNotExist();
    return { ...s };
  }

  /**
   * A file a local upload may send: a base image listed in the image directory (never a name the original treated
   * as data, never a renter's disk). Everything else, existing or not, gets one and the same answer.
   */
  private uploadable(f: { name: string; path: string }): void {
    const listed = listLocalImages(this.localDir).some((i) => i.image_name === f.name);
    if (!listed || this.isTaskDisk(f.name)) throw ClientErrors.imageFilenameNotExist(f.name);
  }

  private localFile(additional: Record<string, unknown>): { name: string; path: string } {
    const raw = additional.image_filename;
    if (raw === undefined || raw === '' || raw === 'undefined') throw ClientErrors.imageFilenameEmpty();
    const name = typeof raw === 'string' ? imageFilenameOf(raw) : undefined;
    if (!name) throw ClientErrors.imageFilenameInvalid();
    return { name, path: join(this.localDir, name) };
  }

  /** a route with an empty peer_nodes_list, answered here: the reply's `message`. `body` carries the credential */
  async local(route: RouteId, additional: Record<string, unknown>, body?: DbcBody): Promise<unknown> {
    switch (route) {
      case 'images.list': {
        const server = this.resolveFor(route, additional, true)!;
        try {
          return (await listImages(server)).map(listEntry);
        } catch (err) {
          throw err instanceof RsyncError ? StorageErrors.listFailed(publicRsyncReason(err.stderr, err.exitCode)) : StorageErrors.listServerUnreachable();
        }
      }
      case 'images.upload': {
        const wallet = await this.caller(body);
        const server = this.resolveFor(route, additional, true)!;
        const f = this.localFile(additional);
        this.uploadable(f);
        if (!existsSync(f.path) || !statSync(f.path).isFile()) throw ClientErrors.imageFilenameNotExist(f.name);
        await this.transfers.startUpload({ server, localPath: f.path, file: f.name, wallet });
        return 'ok';
      }
      case 'images.upload_progress': {
        const wallet = await this.caller(body);
        const f = this.localFile(additional);
        const reply = progressOf(this.transfers.latest('upload', f.name, wallet), false, 'upload');
        // the original answered done when it had no such upload
        return reply ?? { status: 'done', progress: '100%' };
      }
      case 'images.upload_stop': {
        const wallet = await this.caller(body);
        const f = this.localFile(additional);
        await this.transfers.stop('upload', f.name, wallet);
        return 'ok';
      }
      default:
        throw ClientErrors.peerEmpty();
    }
  }

  async close(): Promise<void> {
    await this.transfers.close();
  }
}
