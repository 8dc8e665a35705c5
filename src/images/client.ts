// The client gateway's side of images (original §2.7): its configured image centres, `image_server` ID resolution
// for requests it relays, and the routes it answers itself when peer_nodes_list is empty (a centre's list; upload,
// upload progress and stop from the client host's own image directory).
import { ClientErrors, StorageErrors } from '../protocol/errors.js';
import type { ImageServerSpec, RouteId } from '../protocol/types.js';
import { progressOf } from './node-images.js';
import { imageFilenameOf } from './names.js';
import { listEntry, listImages } from './rsync.js';
import { ImageServerRegistry, type ImageServer } from './servers.js';
import { MemoryTransferRepo, TransferManager, type TransferLogger } from './transfers.js';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface ClientImagesOptions {
  servers: Iterable<ImageServer>;
  /** the client host's image directory (what `/data/<name>` means for a local upload) */
  localDir: string;
  log?: TransferLogger;
  bwlimitKiB?: number;
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

const quiet: TransferLogger = { info() {}, warn() {}, error() {} };

function idOf(additional: Record<string, unknown>): string | undefined {
  const v = additional.image_server;
  if (v === undefined || v === null || v === '' || v === 'undefined') return undefined;
  return typeof v === 'string' ? v : String(v);
}

export class ClientImages {
  readonly registry: ImageServerRegistry;
  readonly transfers: TransferManager;
  readonly localDir: string;

  constructor(o: ClientImagesOptions) {
    this.registry = new ImageServerRegistry(o.servers);
    this.localDir = o.localDir;
    this.transfers = new TransferManager({ repo: new MemoryTransferRepo(), log: o.log ?? quiet, bwlimitKiB: o.bwlimitKiB });
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

  private localFile(additional: Record<string, unknown>): { name: string; path: string } {
    const raw = additional.image_filename;
    if (raw === undefined || raw === '' || raw === 'undefined') throw ClientErrors.invalidParams('additional no image_filename');
    const name = typeof raw === 'string' ? imageFilenameOf(raw) : undefined;
    if (!name) throw ClientErrors.invalidParams('image_filename is invalid');
    return { name, path: join(this.localDir, name) };
  }

  /** a route with an empty peer_nodes_list, answered here: the reply's `message` */
  async local(route: RouteId, additional: Record<string, unknown>): Promise<unknown> {
    switch (route) {
      case 'images.list': {
        const server = this.resolveFor(route, additional, true)!;
        try {
          return (await listImages(server)).map(listEntry);
        } catch (err) {
          throw StorageErrors.listFailed(err instanceof Error ? err.message : String(err));
        }
      }
      case 'images.upload': {
        const server = this.resolveFor(route, additional, true)!;
        const f = this.localFile(additional);
        if (!existsSync(f.path) || !statSync(f.path).isFile()) throw ClientErrors.invalidParams(`image_filename: /data/${f.name} not exist`);
        await this.transfers.startUpload({ server, localPath: f.path, file: f.name, wallet: '' });
        return 'ok';
      }
      case 'images.upload_progress': {
        const f = this.localFile(additional);
        const reply = progressOf(this.transfers.latest('upload', f.name), false, 'upload');
        // the original answered done when it had no such upload
        return reply ?? { status: 'done', progress: '100%' };
      }
      case 'images.upload_stop': {
        const f = this.localFile(additional);
        await this.transfers.stop('upload', f.name);
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
