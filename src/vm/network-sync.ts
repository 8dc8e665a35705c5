// The node's network follows the VMs that run now: rules, leases and taps for exactly those (net/driver.ts sync()).
// Called after every lifecycle operation, on VM exits and by the reconciler.
import type { NetworkDriver } from '../net/driver.js';
import type { TaskStore } from '../store/tasks.js';
import type { Logger } from '../util/logger.js';
import type { Hypervisor } from './types.js';

export class NetworkSync {
  constructor(
    private readonly store: TaskStore,
    private readonly hv: Pick<Hypervisor, 'running'>,
    private readonly net: NetworkDriver,
    /** tasks an operation holds now: their taps stay while they start or stop */
    private readonly busy: () => ReadonlySet<string>,
    private readonly log: Logger,
  ) {}

  /** failures are logged (the reconciler tries again); `strict` rethrows them (tasks/modify in bridge mode) */
  async sync(strict = false): Promise<void> {
    const running = new Set(this.hv.running());
    try {
      await this.net.sync(
        this.store.all().filter((t) => running.has(t.task_id)),
        this.busy(),
      );
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'network sync failed');
      if (strict) throw err;
    }
  }
}
