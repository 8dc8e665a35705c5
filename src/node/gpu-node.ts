// The GPU-node dispatcher: every request, whatever transport brought it, goes through handle():
// validate `additional` -> authenticate (signature, nonce, session) -> rental -> handler -> reply envelope.
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import type { TSchema } from '@sinclair/typebox';
import { AuthFailures, NodeErrors, toEnvelope } from '../protocol/errors.js';
import { ROUTES, type RouteSpec } from '../protocol/routes.js';
import type { NodeReply, NodeRequest, RouteId } from '../protocol/types.js';
import type { Caller, Handler, NodeContext } from './context.js';
import { machineHandlers } from './handlers/machine.js';
import { taskHandlers } from './handlers/tasks.js';
import type { Logger } from '../vm/engine.js';

const HANDLERS: Partial<Record<RouteId, Handler>> = { ...machineHandlers, ...taskHandlers };

export interface ExpiryPolicy {
  /** how often rentals are checked for their end */
  sweepIntervalMs: number;
  /** VMs of an ended rental are deleted this long after they were stopped (the original: 3 days) */
  deleteGraceMs: number;
}

export class GpuNode {
  private readonly checks = new Map<RouteId, TypeCheck<TSchema>>();
  private sweepTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly ctx: NodeContext,
    private readonly log: Logger,
    private readonly expiry: ExpiryPolicy = { sweepIntervalMs: 60_000, deleteGraceMs: 3 * 24 * 3600_000 },
  ) {
    for (const spec of Object.values(ROUTES)) this.checks.set(spec.id, TypeCompiler.Compile(spec.additional));
  }

  get nodeId(): string {
    return this.ctx.nodeId;
  }
  get name(): string {
    return this.ctx.name;
  }
  get version(): string {
    return this.ctx.version;
  }

  start(): void {
    this.sweepTimer = setInterval(() => {
      this.sweepRentals().catch((err) => this.log.error({ err }, 'rental sweep failed'));
    }, this.expiry.sweepIntervalMs);
    this.sweepTimer.unref();
  }

  stop(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
  }

  async handle(req: NodeRequest): Promise<NodeReply> {
    try {
      const spec = ROUTES[req.route];
      const handler = HANDLERS[req.route];
      if (!spec || !handler) throw NodeErrors.generic(`not support route: ${String(req.route)}`);
      this.validate(spec, req);
      const caller = await this.authorize(spec, req);
      const result = await handler(this.ctx, req, caller);
      const reply: NodeReply = { errcode: 0, message: result.message };
      if (result.operationId) reply.operation_id = result.operationId;
      return reply;
    } catch (err) {
      const { body } = toEnvelope(err);
      if (body.message.startsWith('internal error')) this.log.error({ err, route: req.route }, 'handler failed');
      return body;
    }
  }

  private validate(spec: RouteSpec, req: NodeRequest): void {
    const additional = req.body?.additional;
    if (additional === null || typeof additional !== 'object' || Array.isArray(additional)) {
      throw NodeErrors.additionalInvalid('additional is not object');
    }
    const check = this.checks.get(spec.id)!;
    if (!check.Check(additional)) {
      const first = check.Errors(additional).First();
      const field = first?.path.replace(/^\//, '').split('/')[0] || 'additional';
      throw NodeErrors.additionalInvalid(`${field} is invalid`);
    }
  }

  /** check_authority: who is calling, and do they rent this machine now? */
  private async authorize(spec: RouteSpec, req: NodeRequest): Promise<Caller | null> {
    if (spec.nodeAuth === 'none') return null;
    const identity = this.ctx.auth.authenticate(req.body, { allowSession: spec.nodeAuth === 'renter' });
    if (!identity) throw NodeErrors.checkAuthority(AuthFailures.noCredential);
    const rental = await this.ctx.rentals.active(identity.account, this.ctx.now(), req.body.rent_order);
    if (!rental) {
      throw NodeErrors.checkAuthority(identity.kind === 'session' ? AuthFailures.expired : AuthFailures.walletNotRented);
    }
    // the original created the renter's session lazily on a wallet-authenticated request
    if (identity.kind !== 'session') this.ctx.auth.sessions.getOrCreate(identity.account, identity.signers);
    return { identity, rental };
  }

  /** rentals that ended: stop their VMs, end their sessions, delete the VMs after the grace period */
  async sweepRentals(): Promise<void> {
    const now = this.ctx.now();
    const rentals = await this.ctx.rentals.known();
    const activeAccounts = new Set<string>();
    for (const r of rentals) if (r.untilMs > now) activeAccounts.add(r.account);
    const owners = new Set(this.ctx.engine.all().map((t) => t.wallet));
    for (const account of owners) {
      if (activeAccounts.has(account)) {
        this.ctx.engine.clearExpiry(account);
        continue;
      }
      this.ctx.engine.closeForExpiry(account, now);
      this.ctx.auth.sessions.end(account);
      this.ctx.engine.deleteExpired(account, now, this.expiry.deleteGraceMs);
    }
  }
}
