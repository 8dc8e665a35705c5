// The GPU-node dispatcher: every request, whatever transport brought it, goes through handle():
// validate `additional` -> authenticate (signature; nonce and budget checked, nothing written) -> rental -> consume
// the nonce -> handler -> reply envelope. Nothing is written for a caller that is not authorised.
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import type { TSchema } from '@sinclair/typebox';
import { AuthFailures, NodeErrors, toEnvelope } from '../protocol/errors.js';
import { ROUTES, type RouteSpec } from '../protocol/routes.js';
import type { DbcBody, NodeReply, NodeRequest, RouteId } from '../protocol/types.js';
import type { Caller, Handler, NodeContext } from './context.js';
import { machineHandlers } from './handlers/machine.js';
import { taskHandlers } from './handlers/tasks.js';
import { diskHandlers } from './handlers/disk.js';
import { snapshotHandlers } from './handlers/snapshot.js';
import { imageHandlers } from './handlers/images.js';
import { operationHandlers } from './handlers/operations.js';
import { lanHandlers } from './handlers/lan.js';
import type { Logger } from '../vm/engine.js';
import { accountKeyHex } from '../auth/verify.js';
import { RentalUnavailableError, type MachineStatus, type Rental, type RentalSource } from '../rental/types.js';
import type { TaskRow } from '../store/tasks.js';

const HANDLERS: Partial<Record<RouteId, Handler>> = { ...machineHandlers, ...taskHandlers, ...diskHandlers, ...snapshotHandlers, ...imageHandlers, ...operationHandlers, ...lanHandlers };

/** committee verifiers' VMs: `vm_check_<unix seconds>` (original §6.1) */
export const CHECK_VM_PREFIX = 'vm_check_';
export const isCheckVm = (t: Pick<TaskRow, 'task_id'>): boolean => t.task_id.startsWith(CHECK_VM_PREFIX);
/** routes the original refused to verifiers (Auth(N) = R, original §2.6: snapshot create/delete, disks, monitor, lan) */
const RENTER_ONLY_ROUTE = /^(snapshot\.(create|delete)|disk\.|monitor|lan\.(create|delete))/;

export interface ExpiryPolicy {
  /** how often rentals are checked for their end */
  sweepIntervalMs: number;
  /** VMs of an ended rental are deleted this long after they were stopped (the original: 3 days) */
  deleteGraceMs: number;
}

export class GpuNode {
  private readonly checks = new Map<RouteId, TypeCheck<TSchema>>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private pruneTimer: NodeJS.Timeout | undefined;

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
    // used nonces older than the replay window are forgotten at start and then hourly (or per window if shorter)
    this.pruneNonces();
    this.pruneTimer = setInterval(() => this.pruneNonces(), Math.min(3600_000, this.ctx.auth.nonceWindowMs));
    this.pruneTimer.unref();
    this.sweepTimer = setInterval(() => {
      this.sweepRentals().catch((err) => this.log.error({ err }, 'rental sweep failed'));
    }, this.expiry.sweepIntervalMs);
    this.sweepTimer.unref();
  }

  stop(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    if (this.pruneTimer) clearInterval(this.pruneTimer);
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

  /**
   * check_authority for a request answered outside handle() (the client-local routes of `dbc up`): the same
   * checks as `route` on this node, and the nonce is consumed only when the caller is authorised. Throws the
   * `check authority failed: ...` refusals; null for a route without node authentication.
   */
  async authorizeFor(route: RouteId, body: DbcBody): Promise<Caller | null> {
    const spec = ROUTES[route];
    if (!spec) throw NodeErrors.generic(`not support route: ${String(route)}`);
    return this.authorize(spec, { route, params: {}, query: {}, body });
  }

  /** check_authority: who is calling, and do they rent this machine now? */
  private async authorize(spec: RouteSpec, req: NodeRequest): Promise<Caller | null> {
    if (spec.nodeAuth === 'none') return null;
    if (this.ctx.rentals.machineStatus) return this.authorizeByStatus(spec, req, this.ctx.rentals);
    const pending = this.ctx.auth.verify(req.body, { allowSession: spec.nodeAuth === 'renter' });
    if (!pending) throw NodeErrors.checkAuthority(AuthFailures.noCredential);
    const { identity } = pending;
    const rental = await this.ctx.rentals.active(identity.account, this.ctx.now(), req.body.rent_order);
    if (!rental) {
      throw NodeErrors.checkAuthority(identity.kind === 'session' ? AuthFailures.expired : AuthFailures.walletNotRented);
    }
    // authorised: only now is the nonce stored (single use: consume is atomic, a concurrent replay loses here)
    pending.commit();
    // the original created the renter's session lazily on a wallet-authenticated request
    if (identity.kind !== 'session') this.ctx.auth.sessions.getOrCreate(identity.account, identity.signers);
    return { identity, rental };
  }

  /**
   * The original's check_authority state machine for sources with a machine status (the chain):
   * Verify → committee members inside a verify window (role verifier); Online → nobody; Rented → the renters of
   * live orders (wallet, multisig account, or their sessions); unknown / unreachable → `query machine_status failed`.
   * The signature is checked first, so anonymous requests cannot make the node query the chain; the nonce is
   * consumed only once the caller is authorised (verifier in its window, or renter of a live order).
   */
  private async authorizeByStatus(spec: RouteSpec, req: NodeRequest, rentals: RentalSource): Promise<Caller> {
    const pending = this.ctx.auth.verify(req.body, { allowSession: spec.nodeAuth === 'renter' });
    if (!pending) throw NodeErrors.checkAuthority(AuthFailures.noCredential);
    const { identity } = pending;
    const now = this.ctx.now();
    const status = await this.guard(() => rentals.machineStatus!(now));
    switch (status) {
      case 'online':
        this.dropCheckVms();
        throw NodeErrors.checkAuthority(AuthFailures.notRented);
      case 'verify': {
        // only a committee member's own signature: sessions belong to renters
        if (identity.kind === 'session') throw NodeErrors.checkAuthority(AuthFailures.nonceCheckFailed);
        const rental = rentals.verifier ? await this.guard(() => rentals.verifier!(identity.account, now)) : null;
        if (!rental) throw NodeErrors.checkAuthority(AuthFailures.notInVerifyTime);
        pending.commit();
        this.dropCheckVms(identity.account);
        if (spec.nodeAuth === 'wallet') throw NodeErrors.noSessionId();
        if (RENTER_ONLY_ROUTE.test(spec.id)) throw NodeErrors.checkAuthority(AuthFailures.verifierNotAllowed);
        return { identity, rental: { ...rental, role: 'verifier' } };
      }
      case 'rented': {
        this.dropCheckVms();
        const rental = await this.guard(() => rentals.active(identity.account, now, req.body.rent_order));
        if (!rental) {
          throw NodeErrors.checkAuthority(identity.kind === 'session' ? AuthFailures.expired : AuthFailures.walletNotRented);
        }
        pending.commit();
        if (identity.kind !== 'session') this.ctx.auth.sessions.getOrCreate(identity.account, identity.signers);
        return { identity, rental: { ...rental, role: 'renter' } };
      }
      default:
        throw NodeErrors.checkAuthority(AuthFailures.queryStatusFailed);
    }
  }

  /** a source that cannot answer (chain unreachable past the outage grace) refuses with the original's text + why */
  private async guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof RentalUnavailableError) throw NodeErrors.checkAuthority(AuthFailures.chainUnavailable(err.message));
      throw err;
    }
  }

  /** delete committee VMs (`vm_check_*`), except those of `keep` (the verifier now at work), as the original did */
  private dropCheckVms(keep?: string): void {
    const keepKey = keep === undefined ? undefined : (accountKeyHex(keep) ?? keep);
    for (const t of this.ctx.engine.all()) {
      if (!isCheckVm(t) || t.status === 'deleting' || this.ctx.engine.isBusy(t.task_id)) continue;
      if (keepKey !== undefined && (accountKeyHex(t.wallet) ?? t.wallet) === keepKey) continue;
      try {
        this.ctx.engine.remove(t);
        this.log.info({ task_id: t.task_id, wallet: t.wallet }, 'committee check VM deleted');
      } catch (err) {
        this.log.warn({ err, task_id: t.task_id }, 'could not delete a committee check VM');
      }
    }
  }

  /**
   * rentals that ended: stop their VMs, end their sessions, delete the VMs after the grace period. With a machine
   * status (chain) as the original's prune: Verify → renter VMs stop; Online/Rented → committee VMs are deleted;
   * unknown status, or a source that cannot answer from fresh data (chain outage) → nothing is touched.
   */
  async sweepRentals(): Promise<void> {
    const now = this.ctx.now();
    const source = this.ctx.rentals;
    let status: MachineStatus = 'rented';
    let rentals: Rental[];
    try {
      if (source.freshMachineStatus) status = await source.freshMachineStatus(now);
      else if (source.machineStatus) status = await source.machineStatus(now);
      if (status === 'unknown') {
        this.log.warn({}, 'rental sweep skipped: machine status unknown');
        return;
      }
      rentals = status === 'verify' ? [] : await source.known(now);
    } catch (err) {
      if (err instanceof RentalUnavailableError) {
        this.log.warn({ reason: err.message }, 'rental sweep skipped: rental source unavailable');
        return;
      }
      throw err;
    }
    if (status !== 'verify') this.dropCheckVms();
    // the chain names renters in its own SS58 spelling: compare public keys there; the local registry by text
    const key = source.kind === 'chain' ? (a: string) => accountKeyHex(a) ?? a : (a: string) => a;
    const activeAccounts = new Set<string>();
    for (const r of rentals) if (r.untilMs > now) activeAccounts.add(key(r.account));
    const owners = new Set(this.ctx.engine.all().filter((t) => !isCheckVm(t)).map((t) => t.wallet));
    for (const account of owners) {
      if (activeAccounts.has(key(account))) {
        this.ctx.engine.clearExpiry(account);
        continue;
      }
      this.ctx.engine.closeForExpiry(account, now);
      this.ctx.auth.sessions.end(account);
      this.ctx.engine.deleteExpired(account, now, this.expiry.deleteGraceMs);
    }
  }
}
