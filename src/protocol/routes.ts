// The node-routed operations: one entry per route, and the RouteId union is derived from this table (adding a route
// is one entry here, docs/architecture.md). The client gateway uses `clientAuth` for its pre-check (original
// §2.4/§2.6) and `op` for the timeout text; the GPU node uses `nodeAuth` and `additional`.
// Above ~400 lines on purpose: one entry per DBC route with its texts, read as one table.
import type { TSchema } from '@sinclair/typebox';
import {
  CreateTaskAdditional,
  DiskAddAdditional,
  DiskDeleteAdditional,
  DiskResizeAdditional,
  EmptyAdditional,
  ImageDownloadAdditional,
  ImageFileAdditional,
  ImagesListAdditional,
  ImageUploadAdditional,
  LanCreateAdditional,
  ModifyTaskAdditional,
  OperationsListAdditional,
  PasswdAdditional,
  SnapshotCreateAdditional,
} from './schemas.js';

/**
 * clientAuth: what the client gateway requires before relaying
 *   'none'    no credential needed
 *   'session' session pair OR wallet/multisig (`session_id and wallet all invalid` when neither)
 *   'wallet'  wallet or multisig only (`wallet_sign and multisig_wallets all invalid`)
 * nodeAuth: what the GPU node enforces
 *   'none'    open (machine info)
 *   'renter'  any credential of the current renter (wallet, multisig, session)
 *   'wallet'  the renter's own wallet/multisig signature (no session), e.g. to obtain the session id
 */
export interface RouteSpec {
  id: RouteId;
  /** URI pattern as documented, for OpenAPI and errors */
  path: string;
  summary: string;
  clientAuth: 'none' | 'session' | 'wallet';
  nodeAuth: 'none' | 'renter' | 'wallet';
  /** used in the `<op> timeout` error text */
  op: string;
  additional: TSchema;
  /** the route needs a task owned by the caller (params.task_id) */
  task?: boolean;
}

const ROUTE_TABLE = {
  'mining_nodes.info': {
    id: 'mining_nodes.info',
    path: '/api/v1/mining_nodes',
    summary: 'GPU node machine info (cpu, gpu, mem, disks, os, images)',
    clientAuth: 'none',
    nodeAuth: 'none',
    op: 'query node info',
    additional: EmptyAdditional,
  },
  'mining_nodes.session_id': {
    id: 'mining_nodes.session_id',
    path: '/api/v1/mining_nodes/session_id',
    summary: "the renter's session id",
    clientAuth: 'wallet',
    nodeAuth: 'wallet',
    op: 'query node session_id',
    additional: EmptyAdditional,
  },
  'mining_nodes.free_memory': {
    id: 'mining_nodes.free_memory',
    path: '/api/v1/mining_nodes/free_memory',
    summary: 'drop host page caches',
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'free memory',
    additional: EmptyAdditional,
  },
  'tasks.list': {
    id: 'tasks.list',
    path: '/api/v1/tasks',
    summary: "list the caller's VMs",
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'list task',
    additional: EmptyAdditional,
  },
  'tasks.detail': {
    id: 'tasks.detail',
    path: '/api/v1/tasks/{task_id}',
    summary: 'VM detail (login, ports, status)',
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'list task',
    additional: EmptyAdditional,
    task: true,
  },
  'tasks.create': {
    id: 'tasks.create',
    path: '/api/v1/tasks/start',
    summary: 'create a VM; answers at once with status creating',
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'create task',
    additional: CreateTaskAdditional,
  },
  'tasks.start': {
    id: 'tasks.start',
    path: '/api/v1/tasks/start/{task_id}',
    summary: 'power on (or wake) a VM',
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'start task',
    additional: EmptyAdditional,
    task: true,
  },
  'tasks.shutdown': {
    id: 'tasks.shutdown',
    path: '/api/v1/tasks/shutdown/{task_id}',
    summary: 'ACPI shutdown with a timeout, then hard stop',
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'shutdown task',
    additional: EmptyAdditional,
    task: true,
  },
  'tasks.poweroff': {
    id: 'tasks.poweroff',
    path: '/api/v1/tasks/poweroff/{task_id}',
    summary: 'hard power off',
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'stop task',
    additional: EmptyAdditional,
    task: true,
  },
  'tasks.stop': {
    id: 'tasks.stop',
    path: '/api/v1/tasks/stop/{task_id}',
    summary: 'hard power off (older name of poweroff)',
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'stop task',
    additional: EmptyAdditional,
    task: true,
  },
  'tasks.restart': {
    id: 'tasks.restart',
    path: '/api/v1/tasks/restart/{task_id}',
    summary: 'reboot; ?force_reboot=true for a hard restart',
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'restart task',
    additional: EmptyAdditional,
    task: true,
  },
  'tasks.reset': {
    id: 'tasks.reset',
    path: '/api/v1/tasks/reset/{task_id}',
    summary: 'hardware reset',
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'reset task',
    additional: EmptyAdditional,
    task: true,
  },
  'tasks.delete': {
    id: 'tasks.delete',
    path: '/api/v1/tasks/delete/{task_id}',
    summary: 'delete a VM and its disks',
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'delete task',
    additional: EmptyAdditional,
    task: true,
  },
  'tasks.logs': {
    id: 'tasks.logs',
    path: '/api/v1/tasks/logs/{task_id}',
    summary: 'serial console lines (?flag=head|tail&line_num=N)',
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'get task log',
    additional: EmptyAdditional,
    task: true,
  },
  'tasks.modify': {
    id: 'tasks.modify',
    path: '/api/v1/tasks/modify/{task_id}',
    summary: 'change ports (at once) or gpu/cpu/mem (next boot)',
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'modify task',
    additional: ModifyTaskAdditional,
    task: true,
  },
  'tasks.passwd': {
    id: 'tasks.passwd',
    path: '/api/v1/tasks/passwd/{task_id}',
    summary: 'set the login password in the running guest',
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'set task passwd',
    additional: PasswdAdditional,
    task: true,
  },
  'operations.get': {
    id: 'operations.get',
    path: '/api/v1/operations/{operation_id}',
    summary: 'state and progress of a long operation',
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'query operation',
    additional: EmptyAdditional,
  },
  'operations.list': {
    id: 'operations.list',
    path: '/api/v1/operations',
    summary: "the caller's recent operations (additional.task_id: one task's)",
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'list operations',
    additional: OperationsListAdditional,
  },
  // --- images (original §10). The node answers `images` without credentials; with them it adds the caller's snapshots.
  'images.list': {
    id: 'images.list',
    path: '/api/v1/images',
    summary: "images: empty peer_nodes_list + image_server = that centre's list (the client asks it); a node id = the node's images",
    clientAuth: 'none',
    nodeAuth: 'none',
    op: 'list images',
    additional: ImagesListAdditional,
  },
  'images.download': {
    id: 'images.download',
    path: '/api/v1/images/download',
    summary: 'image centre -> GPU node (rsync, resumable); answers at once',
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'download image',
    additional: ImageDownloadAdditional,
  },
  'images.download_progress': {
    id: 'images.download_progress',
    path: '/api/v1/images/downloadprogress',
    summary: 'status, percent and bytes of a download',
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'query download image progress',
    additional: ImageFileAdditional,
  },
  'images.download_stop': {
    id: 'images.download_stop',
    path: '/api/v1/images/download_stop',
    summary: 'stop a download (the partial file is kept; download again to resume)',
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'stop download image',
    additional: ImageFileAdditional,
  },
  'images.upload': {
    id: 'images.upload',
    path: '/api/v1/images/upload',
    summary: 'GPU node (or, with an empty peer_nodes_list, the client host) -> image centre; answers at once',
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'upload image',
    additional: ImageUploadAdditional,
  },
  'images.upload_progress': {
    id: 'images.upload_progress',
    path: '/api/v1/images/uploadprogress',
    summary: 'status, percent and bytes of an upload',
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'query upload image progress',
    additional: ImageFileAdditional,
  },
  'images.upload_stop': {
    id: 'images.upload_stop',
    path: '/api/v1/images/upload_stop',
    summary: 'stop an upload (upload again to resume)',
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'stop upload image',
    additional: ImageFileAdditional,
  },
  'images.delete': {
    id: 'images.delete',
    path: '/api/v1/images/delete',
    summary: 'delete an image of the node (refused while a VM or a transfer uses it)',
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'delete image',
    additional: ImageFileAdditional,
  },
  // --- snapshots (original §9)
  'snapshot.list': {
    id: 'snapshot.list',
    path: '/api/v1/snapshot/list/{task_id}',
    summary: "a VM's snapshots; /snapshot/list/<task_id>/<snapshot_name> for one",
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'list snapshot',
    additional: EmptyAdditional,
    task: true,
  },
  'snapshot.create': {
    id: 'snapshot.create',
    path: '/api/v1/snapshot/create/{task_id}',
    summary: 'incremental qcow2 of vda against its base image, uploaded to the image centre (VM shut off); answers at once',
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'create snapshot',
    additional: SnapshotCreateAdditional,
    task: true,
  },
  'snapshot.delete': {
    id: 'snapshot.delete',
    path: '/api/v1/snapshot/delete/{task_id}/{snapshot_name}',
    summary: 'delete the local snapshot (the image centre keeps its copy)',
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'delete snapshot',
    additional: EmptyAdditional,
    task: true,
  },
  // --- disks (original §8)
  'disk.list': {
    id: 'disk.list',
    path: '/api/v1/disk/list/{task_id}',
    summary: "a VM's disks [{name, file, size}]",
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'list disk',
    additional: EmptyAdditional,
    task: true,
  },
  'disk.resize': {
    id: 'disk.resize',
    path: '/api/v1/disk/resize/{task_id}',
    summary: 'grow a disk by `size` GB (online when the VM runs)',
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'resize disk',
    additional: DiskResizeAdditional,
    task: true,
  },
  'disk.add': {
    id: 'disk.add',
    path: '/api/v1/disk/add/{task_id}',
    summary: 'add a data disk (hot-added when the VM runs)',
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'add disk',
    additional: DiskAddAdditional,
    task: true,
  },
  // --- private LANs (original §11). The original answered lan and lan/<name> without credentials; ours need the
  // renter's and show only the renter's networks (docs/compatibility.md).
  'lan.list': {
    id: 'lan.list',
    path: '/api/v1/lan',
    summary: "the caller's private LANs on the node (a bare array, at most 31)",
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'list lan',
    additional: EmptyAdditional,
  },
  'lan.detail': {
    id: 'lan.detail',
    path: '/api/v1/lan/{network_name}',
    summary: 'one LAN: subnet, VXLAN id, devices, members and their addresses',
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'list lan',
    additional: EmptyAdditional,
  },
  'lan.create': {
    id: 'lan.create',
    path: '/api/v1/lan/create',
    summary: 'create a private LAN (VMs join it with network_name on tasks/start)',
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'create lan',
    additional: LanCreateAdditional,
  },
  'lan.delete': {
    id: 'lan.delete',
    path: '/api/v1/lan/delete/{network_name}',
    summary: 'delete a LAN (owner only; refused while VMs use it)',
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'delete lan',
    additional: EmptyAdditional,
  },
  'disk.delete': {
    id: 'disk.delete',
    path: '/api/v1/disk/delete/{task_id}',
    summary: 'delete a data disk and its file (VM shut off)',
    clientAuth: 'session',
    nodeAuth: 'renter',
    op: 'delete disk',
    additional: DiskDeleteAdditional,
    task: true,
  },
} as const satisfies Record<string, Omit<RouteSpec, 'id'> & { id: string }>;

/** Route identifiers: one per DBC operation the GPU node answers (the keys of the table). */
export type RouteId = keyof typeof ROUTE_TABLE;

export const ROUTES: Readonly<Record<RouteId, RouteSpec>> = ROUTE_TABLE;
