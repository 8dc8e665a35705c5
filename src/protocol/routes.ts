// The node-routed operations: one entry per RouteId. The client gateway uses `clientAuth` for its pre-check
// (original §2.4/§2.6) and `op` for the timeout text; the GPU node uses `nodeAuth` and `additional`.
import type { TSchema } from '@sinclair/typebox';
import type { RouteId } from './types.js';
import { CreateTaskAdditional, EmptyAdditional, ModifyTaskAdditional, PasswdAdditional } from './schemas.js';

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

export const ROUTES: Record<RouteId, RouteSpec> = {
  'mining_nodes.info': {
    id: 'mining_nodes.info', path: '/api/v1/mining_nodes', summary: 'GPU node machine info (cpu, gpu, mem, disks, os, images)',
    clientAuth: 'none', nodeAuth: 'none', op: 'query node info', additional: EmptyAdditional,
  },
  'mining_nodes.session_id': {
    id: 'mining_nodes.session_id', path: '/api/v1/mining_nodes/session_id', summary: "the renter's session id",
    clientAuth: 'wallet', nodeAuth: 'wallet', op: 'query node session_id', additional: EmptyAdditional,
  },
  'mining_nodes.free_memory': {
    id: 'mining_nodes.free_memory', path: '/api/v1/mining_nodes/free_memory', summary: 'drop host page caches',
    clientAuth: 'session', nodeAuth: 'renter', op: 'free memory', additional: EmptyAdditional,
  },
  'tasks.list': {
    id: 'tasks.list', path: '/api/v1/tasks', summary: "list the caller's VMs",
    clientAuth: 'session', nodeAuth: 'renter', op: 'list task', additional: EmptyAdditional,
  },
  'tasks.detail': {
    id: 'tasks.detail', path: '/api/v1/tasks/{task_id}', summary: 'VM detail (login, ports, status)',
    clientAuth: 'session', nodeAuth: 'renter', op: 'list task', additional: EmptyAdditional, task: true,
  },
  'tasks.create': {
    id: 'tasks.create', path: '/api/v1/tasks/start', summary: 'create a VM; answers at once with status creating',
    clientAuth: 'session', nodeAuth: 'renter', op: 'create task', additional: CreateTaskAdditional,
  },
  'tasks.start': {
    id: 'tasks.start', path: '/api/v1/tasks/start/{task_id}', summary: 'power on (or wake) a VM',
    clientAuth: 'session', nodeAuth: 'renter', op: 'start task', additional: EmptyAdditional, task: true,
  },
  'tasks.shutdown': {
    id: 'tasks.shutdown', path: '/api/v1/tasks/shutdown/{task_id}', summary: 'ACPI shutdown with a timeout, then hard stop',
    clientAuth: 'session', nodeAuth: 'renter', op: 'shutdown task', additional: EmptyAdditional, task: true,
  },
  'tasks.poweroff': {
    id: 'tasks.poweroff', path: '/api/v1/tasks/poweroff/{task_id}', summary: 'hard power off',
    clientAuth: 'session', nodeAuth: 'renter', op: 'stop task', additional: EmptyAdditional, task: true,
  },
  'tasks.stop': {
    id: 'tasks.stop', path: '/api/v1/tasks/stop/{task_id}', summary: 'hard power off (older name of poweroff)',
    clientAuth: 'session', nodeAuth: 'renter', op: 'stop task', additional: EmptyAdditional, task: true,
  },
  'tasks.restart': {
    id: 'tasks.restart', path: '/api/v1/tasks/restart/{task_id}', summary: 'reboot; ?force_reboot=true for a hard restart',
    clientAuth: 'session', nodeAuth: 'renter', op: 'restart task', additional: EmptyAdditional, task: true,
  },
  'tasks.reset': {
    id: 'tasks.reset', path: '/api/v1/tasks/reset/{task_id}', summary: 'hardware reset',
    clientAuth: 'session', nodeAuth: 'renter', op: 'reset task', additional: EmptyAdditional, task: true,
  },
  'tasks.delete': {
    id: 'tasks.delete', path: '/api/v1/tasks/delete/{task_id}', summary: 'delete a VM and its disks',
    clientAuth: 'session', nodeAuth: 'renter', op: 'delete task', additional: EmptyAdditional, task: true,
  },
  'tasks.logs': {
    id: 'tasks.logs', path: '/api/v1/tasks/logs/{task_id}', summary: 'serial console lines (?flag=head|tail&line_num=N)',
    clientAuth: 'session', nodeAuth: 'renter', op: 'get task log', additional: EmptyAdditional, task: true,
  },
  'tasks.modify': {
    id: 'tasks.modify', path: '/api/v1/tasks/modify/{task_id}', summary: 'change ports (at once) or gpu/cpu/mem (next boot)',
    clientAuth: 'session', nodeAuth: 'renter', op: 'modify task', additional: ModifyTaskAdditional, task: true,
  },
  'tasks.passwd': {
    id: 'tasks.passwd', path: '/api/v1/tasks/passwd/{task_id}', summary: 'set the login password in the running guest',
    clientAuth: 'session', nodeAuth: 'renter', op: 'set task passwd', additional: PasswdAdditional, task: true,
  },
  'operations.get': {
    id: 'operations.get', path: '/api/v1/operations/{operation_id}', summary: 'state and progress of a long operation',
    clientAuth: 'session', nodeAuth: 'renter', op: 'query operation', additional: EmptyAdditional,
  },
};
