// What a GPU-node handler may use. Handlers are functions of (context, request, caller) -> message; they turn
// `additional` into typed commands and call services; they never spawn processes themselves.
import type { Authenticator, Identity } from '../auth/authenticator.js';
import type { HostInventory } from '../host/inventory.js';
import type { NodeRequest } from '../protocol/types.js';
import type { Rental, RentalSource } from '../rental/types.js';
import type { NetworkDriver } from '../net/driver.js';
import type { LanService } from '../net/lan-service.js';
import type { EventBus, Operations } from '../ops/index.js';
import type { StorageService } from '../storage/service.js';
import type { TaskLifecycle } from '../vm/lifecycle.js';
import type { NodeChannels } from './channels.js';
import type { TicketStore } from './tickets.js';

export interface NodeContext {
  nodeId: string;
  name: string;
  version: string;
  /** the VM lifecycle (vm/lifecycle.ts) */
  tasks: TaskLifecycle;
  /** disks, snapshots, node images and transfers */
  storage: StorageService;
  /** private LANs */
  lans: LanService;
  /** the node's network mode: addresses, NIC kinds */
  net: NetworkDriver;
  /** operations (progress, outcome) and the node's event bus */
  ops: Operations;
  events: EventBus;
  auth: Authenticator;
  /** single-use tickets for the events, console and VNC channels */
  tickets: TicketStore;
  /** the node's end of those channels */
  channels: NodeChannels;
  rentals: RentalSource;
  inventory: HostInventory;
  imageDir: string;
  /** address shown as ssh_ip / in machine info */
  publicHost: string;
  now: () => number;
  /** drop host page caches (mining_nodes/free_memory) */
  dropCaches: () => Promise<void>;
}

export interface Caller {
  identity: Identity;
  rental: Rental;
}

/** a handler's answer: the `message` of the reply, plus the operation it started if any */
export interface HandlerResult {
  message: unknown;
  operationId?: string;
}

export type Handler = (ctx: NodeContext, req: NodeRequest, caller: Caller | null) => Promise<HandlerResult>;
