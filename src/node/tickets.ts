// Short-lived tickets for the GET and websocket routes that cannot carry a signed DBC body (events, console, VNC):
// a signed POST obtains one, bound to the caller's account (and task), single use, expiring after 60 s (Proxmox's
// vncproxy ticket is the model). Held in memory only: a node restart voids them, which costs a renter one POST.
import { randomBytes } from 'node:crypto';
import { NodeErrors } from '../errors/index.js';
import type { ChannelKind } from '../protocol/types.js';

export const TICKET_TTL_MS = 60_000;
/** outstanding tickets per account: a renter looping on the POST cannot grow the node's memory */
export const MAX_TICKETS_PER_ACCOUNT = 64;
const TICKET_RE = /^[A-Za-z0-9_-]{43}$/;

export interface TicketGrant {
  kind: ChannelKind;
  account: string;
  taskId?: string;
}

interface Held extends TicketGrant {
  expires: number;
}

export class TicketStore {
  private readonly held = new Map<string, Held>();

  constructor(
    private readonly now: () => number = Date.now,
    private readonly ttlMs = TICKET_TTL_MS,
  ) {}

  issue(grant: TicketGrant): { ticket: string; expires_in: number } {
    this.prune();
    let mine = 0;
    for (const h of this.held.values()) if (h.account === grant.account) mine++;
    if (mine >= MAX_TICKETS_PER_ACCOUNT) throw NodeErrors.tooManyTickets();
    const ticket = randomBytes(32).toString('base64url');
    this.held.set(ticket, { ...grant, expires: this.now() + this.ttlMs });
    return { ticket, expires_in: Math.round(this.ttlMs / 1000) };
  }

  /** the grant of a ticket of this kind, removed (single use); a forged, reused, expired or other-kind ticket throws */
  consume(ticket: string, kind: ChannelKind): TicketGrant {
    const h = TICKET_RE.test(ticket) ? this.held.get(ticket) : undefined;
    if (h) this.held.delete(ticket);
    if (!h || h.kind !== kind || h.expires <= this.now()) throw NodeErrors.ticketInvalid();
    return { kind: h.kind, account: h.account, ...(h.taskId ? { taskId: h.taskId } : {}) };
  }

  get size(): number {
    return this.held.size;
  }

  private prune(): void {
    const now = this.now();
    for (const [t, h] of this.held) if (h.expires <= now) this.held.delete(t);
  }
}
