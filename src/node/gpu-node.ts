// The GPU-node dispatcher: every request, whatever transport brought it, goes through handle():
// validate `additional` -> authenticate (signature; nonce and budget checked, nothing written) -> rental -> consume
// the nonce -> handler -> reply envelope. Nothing is written for a caller that is not authorised.
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import type { TSchema } from '@sinclair/typebox';
import { AuthErrors, NodeErrors } from '../errors/index.js';
import { toEnvelope } from '../protocol/errors.js';
import { ROUTES, type RouteSpec } from '../protocol/routes.js';
import type { ChannelOpen, DbcBody, NodeReply, NodeRequest, RouteId } from '../protocol/types.js';
import type { ByteChannel } from '../util/channel.js';
import type { Caller, Handler, NodeContext } from './context.js';
import { machineHandlers } from './handlers/machine.js';
import { taskHandlers } from './handlers/tasks.js';
import { diskHandlers } from './handlers/disk.js';
import { snapshotHandlers } from './handlers/snapshot.js';
import { imageHandlers } from './handlers/images.js';
import { operationHandlers } from './handlers/operations.js';
import { lanHandlers } from './handlers/lan.js';
import { streamHandlers } from './handlers/streams.js';
import type { Logger } from '../util/logger.js';
import { RentalUnavailableError } from '../rental/types.js';
import { DEFAULT_EXPIRY, RentalSweep, type ExpiryPolicy } from '../rental/sweep.js';

const HANDLERS: Partial<Record<RouteId, Handler>> = {
  ...machineHandlers,
  ...taskHandlers,
  ...streamHandlers,
  ...diskHandlers,
  ...snapshotHandlers,
  ...imageHandlers,
  ...operationHandlers,
  ...lanHandlers,
};

/** the expiry policy lives with the sweep (rental/sweep.ts); re-exported for node/bootstrap.ts */
export type { ExpiryPolicy } from '../rental/sweep.js';
/** routes the original refused to verifiers (Auth(N) = R, original §2.6: snapshot create/delete, disks, monitor, lan) */
const RENTER_ONLY_ROUTE = /^(snapshot\.(create|delete)|disk\.|monitor|lan\.(create|delete))/;

export class GpuNode {
  private readonly checks = new Map<RouteId, TypeCheck<TSchema>>();
  private pruneTimer: NodeJS.Timeout | undefined;
  /** rental expiry and committee check VMs (rental/sweep.ts) */
  readonly rentalSweep: RentalSweep;

  constructor(
    readonly ctx: NodeContext,
    private readonly log: Logger,
    expiry: ExpiryPolicy = DEFAULT_EXPIRY,
  ) {
    for (const spec of Object.values(ROUTES)) this.checks.set(spec.id, TypeCompiler.Compile(spec.additional));
    this.rentalSweep = new RentalSweep({
      source: ctx.rentals,
      target: ctx.tasks,
      sessions: ctx.auth.sessions,
      log,
      now: () => ctx.now(),
      policy: expiry,
    });
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
    // used nonces older than the replay window are forgotten at start and then hourly (or per window if shorter)
    this.pruneNonces();
    this.pruneTimer = setInterval(() => this.pruneNonces(), Math.min(3600_000, this.ctx.auth.nonceWindowMs));
    this.pruneTimer.unref();
    this.rentalSweep.start();
  }

  stop(): void {
    this.rentalSweep.stop();
    if (this.pruneTimer) clearInterval(this.pruneTimer);
  }

  /** one rental expiry sweep now (rental/sweep.ts); the timer runs it every sweepIntervalMs */
  sweepRentals(): Promise<void> {
    return this.rentalSweep.sweep();
  }

  /** forgets used nonces older than the replay window; returns how many */
  pruneNonces(): number {
    try {
      const n = this.ctx.auth.pruneNonces(this.ctx.now());
      if (n > 0) this.log.info({ pruned: n, window_ms: this.ctx.auth.nonceWindowMs }, 'used nonces pruned');
      return n;
    } catch (err) {
      this.log.error({ err }, 'nonce prune failed');
      return 0;
    }
  }

  /** a long-lived channel a ticket opens (node/channels.ts); rejects with the node's DbcError */
  openChannel(o: ChannelOpen): Promise<ByteChannel> {
    return this.ctx.channels.openChannel(o);
  }

  async handle(req: NodeRequest): Promise<NodeReply> {
    try {
      const spec = ROUTES[req.route];
      const handler = HANDLERS[req.route];
      if (!spec || !handler) throw NodeErrors.routeNotSupported(String(req.route));
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
      throw NodeErrors.additionalNotObject();
    }
    const check = this.checks.get(spec.id)!;
    if (!check.Check(additional)) {
      const first = check.Errors(additional).First();
      const field = first?.path.replace(/^\//, '').split('/')[0] || 'additional';
      throw NodeErrors.paramInvalid(field);
    }
  }

  /**
   * check_authority for a request answered outside handle() (the client-local routes of `dbc up`): the same
   * checks as `route` on this node, and the nonce is consumed only when the caller is authorised. Throws the
   * `check authority failed: ...` refusals; null for a route without node authentication.
   */
  async authorizeFor(route: RouteId, body: DbcBody): Promise<Caller | null> {
    const spec = ROUTES[route];
    if (!spec) throw NodeErrors.routeNotSupported(String(route));
    return this.authorize(spec, { route, params: {}, query: {}, body });
  }

  /**
   * check_authority, the original's state machine over the source's machine status (the local registry always
   * answers 'rented'): Verify → committee members inside a verify window (role verifier); Online → nobody;
   * Rented → the renters of live orders / registry entries (wallet, multisig account, or their sessions);
   * unknown / unreachable → `query machine_status failed`. The signature is checked first, so anonymous requests
   * cannot make the node query the source; the nonce is consumed only once the caller is authorised (verifier in
   * its window, or a renter).
   */
  private async authorize(spec: RouteSpec, req: NodeRequest): Promise<Caller | null> {
    if (spec.nodeAuth === 'none') return null;
    const rentals = this.ctx.rentals;
    const pending = this.ctx.auth.verify(req.body, { allowSession: spec.nodeAuth === 'renter' });
    if (!pending) throw AuthErrors.noCredential();
    const { identity } = pending;
    const now = this.ctx.now();
    const status = await this.guard(() => rentals.machineStatus(now));
    switch (status) {
      case 'online':
        this.rentalSweep.dropCheckVms();
        throw AuthErrors.notRented();
      case 'verify': {
        // only a committee member's own signature: sessions belong to renters
        if (identity.kind === 'session') throw AuthErrors.nonceCheckFailed();
        const rental = await this.guard(() => rentals.verifier(identity.account, now));
        if (!rental) throw AuthErrors.notInVerifyTime();
        pending.commit();
        this.rentalSweep.dropCheckVms(identity.account);
        if (spec.nodeAuth === 'wallet') throw NodeErrors.noSessionId();
        if (RENTER_ONLY_ROUTE.test(spec.id)) throw AuthErrors.verifierNotAllowed();
        return { identity, rental: { ...rental, role: 'verifier' } };
      }
      case 'rented': {
        this.rentalSweep.dropCheckVms();
        const rental = await this.guard(() => rentals.active(identity.account, now, req.body.rent_order));
        if (!rental) {
          throw identity.kind === 'session' ? AuthErrors.expired() : AuthErrors.walletNotRented();
        }
        // authorised: only now is the nonce stored (single use: consume is atomic, a concurrent replay loses here)
        pending.commit();
        // the original created the renter's session lazily on a wallet-authenticated request
        if (identity.kind !== 'session') this.ctx.auth.sessions.getOrCreate(identity.account, identity.signers);
        return { identity, rental: { ...rental, role: 'renter' } };
      }
      default:
        throw AuthErrors.queryStatusFailed();
    }
  }

  /** a source that cannot answer (chain unreachable past the outage grace) refuses with the original's text + why */
  private async guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof RentalUnavailableError) throw AuthErrors.chainUnavailable(err.message);
      throw err;
    }
  }
}
