// What a GPU-node handler may use. Handlers are functions of (context, request, caller) -> message; they never
// spawn processes themselves (the engine and the host modules do).
import type { Authenticator, Identity } from '../auth/authenticator.js';
import type { HostInventory } from '../host/inventory.js';
import type { NodeRequest } from '../protocol/types.js';
import type { Rental, RentalSource } from '../rental/types.js';
import type { TaskEngine } from '../vm/engine.js';

export interface NodeContext {
  nodeId: string;
  name: string;
  version: string;
  engine: TaskEngine;
  auth: Authenticator;
  rentals: RentalSource;
  inventory: HostInventory;
  imageDir: string;
  /** address shown as ssh_ip / in machine info */
  publicHost: string;
  networkMode: 'user' | 'bridge';
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
