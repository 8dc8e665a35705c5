// The node's end of long-lived channels (docs/events.md, docs/console.md): a ticket from tickets.ts opens one
// kind for the account (and task) it was issued to.
//   events   JSON lines, the held events after last_event_id first, then live; an empty line every 15 s
//   console  the VM's serial console both ways (vm/console-hub.ts)
//   vnc      the VM's VNC server's bytes both ways (the renter's client does the RFB handshake with the password
//            the ticket reply carried)
// The channel closes when the VM stops, the task is deleted or the ticket's rental ends (the caller's problem: the
// node closes every channel of an account whose tasks it closes; events streams end at node shutdown).
import net from 'node:net';
import { NodeErrors } from '../errors/index.js';
import type { EventLog, RenterEvent } from '../ops/event-log.js';
import { matches } from '../ops/event-log.js';
import type { ChannelOpen } from '../protocol/types.js';
import { channelPair, type ByteChannel } from '../util/channel.js';
import type { Logger } from '../util/logger.js';
import type { ConsoleHub } from '../vm/console-hub.js';
import { authenticateToServer, ByteReader, offerNoAuth } from '../vm/vnc-proxy.js';
import type { TaskLifecycle } from '../vm/lifecycle.js';
import type { TicketStore } from './tickets.js';

export const EVENTS_KEEPALIVE_MS = 15_000;
/** event streams one account may hold open on the node */
export const MAX_EVENT_STREAMS_PER_ACCOUNT = 32;
const TASK_ID_RE = /^[A-Za-z0-9]{1,64}$/;
const TYPE_RE = /^[a-z.]{1,40}$/;

export interface NodeChannelDeps {
  tickets: TicketStore;
  events: EventLog;
  consoles: ConsoleHub;
  tasks: Pick<TaskLifecycle, 'owned' | 'consoleOf'>;
  /** where the node's VNC servers listen (127.0.0.1 when they listen on every address) */
  vncHost: string;
  log: Logger;
}

const enc = new TextEncoder();

export class NodeChannels {
  private readonly eventStreams = new Map<string, number>();
  private readonly open = new Set<ByteChannel>();

  constructor(private readonly d: NodeChannelDeps) {}

  /** the client's end of a new channel; throws the node's DbcError when the ticket or the task refuses it */
  async openChannel(o: ChannelOpen): Promise<ByteChannel> {
    const grant = this.d.tickets.consume(String(o.ticket ?? ''), o.kind);
    const [client, node] = channelPair();
    this.open.add(node);
    node.onClose(() => this.open.delete(node));
    try {
      switch (o.kind) {
        case 'events':
          this.events(node, grant.account, o.params ?? {});
          break;
        case 'console':
          await this.console(node, grant.account, grant.taskId ?? '');
          break;
        case 'vnc':
          await this.vnc(node, grant.account, grant.taskId ?? '');
          break;
        default:
          throw NodeErrors.ticketInvalid();
      }
    } catch (err) {
      node.close('refused');
      throw err;
    }
    return client;
  }

  /** channels open now (tests, metrics) */
  get openCount(): number {
    return this.open.size;
  }

  close(): void {
    for (const c of [...this.open]) c.close('the node is stopping');
  }

  private events(ch: ByteChannel, account: string, params: Record<string, string>): void {
    const taskId = params.task_id;
    const type = params.type;
    if (taskId !== undefined && taskId !== '' && !TASK_ID_RE.test(taskId)) throw NodeErrors.paramInvalid('task_id');
    if (type !== undefined && type !== '' && !TYPE_RE.test(type)) throw NodeErrors.paramInvalid('type');
    const held = this.eventStreams.get(account) ?? 0;
    if (held >= MAX_EVENT_STREAMS_PER_ACCOUNT) throw NodeErrors.tooManyViewers();
    this.eventStreams.set(account, held + 1);
    const filter = { account, ...(taskId ? { task_id: taskId } : {}), ...(type ? { type } : {}) };
    const line = (e: RenterEvent) => ch.send(enc.encode(`${JSON.stringify(e)}\n`));
    for (const e of this.d.events.since(filter, params.last_event_id)) line(e);
    const off = this.d.events.subscribe((acc, e) => {
      if (matches(filter, acc, e)) line(e);
    });
    const keepalive = setInterval(() => ch.send(enc.encode('\n')), EVENTS_KEEPALIVE_MS);
    keepalive.unref();
    ch.onData(() => undefined); // nothing is read from an events client
    ch.onClose(() => {
      off();
      clearInterval(keepalive);
      const n = (this.eventStreams.get(account) ?? 1) - 1;
      if (n <= 0) this.eventStreams.delete(account);
      else this.eventStreams.set(account, n);
    });
  }

  private async console(ch: ByteChannel, account: string, taskId: string): Promise<void> {
    const task = this.d.tasks.owned(taskId, account);
    const where = this.d.tasks.consoleOf(task.task_id);
    if (!where) throw NodeErrors.consoleNotRunning();
    let attachment;
    try {
      attachment = await this.d.consoles.attach(task.task_id, where.socket, where.log, {
        write: (data) => ch.send(data),
        end: (reason) => ch.close(reason),
      });
    } catch (err) {
      this.d.log.warn({ task_id: task.task_id, err: (err as Error).message }, 'console attach failed');
      if ((err as Error).message === 'too many viewers') throw NodeErrors.tooManyViewers();
      throw NodeErrors.consoleNotRunning();
    }
    const a = attachment;
    ch.onData((d) => a.input(d));
    ch.onClose(() => a.detach());
  }

  private async vnc(ch: ByteChannel, account: string, taskId: string): Promise<void> {
    const task = this.d.tasks.owned(taskId, account);
    if (!this.d.tasks.consoleOf(task.task_id)) throw NodeErrors.consoleNotRunning();
    const sock = net.connect({ host: this.d.vncHost, port: task.vnc_port });
    const fromServer = new ByteReader();
    sock.on('data', (d: Buffer) => fromServer.push(d));
    sock.on('error', (err) => fromServer.fail(err));
    sock.on('close', () => fromServer.fail(new Error('the display closed')));
    try {
      // QEMU's VNC password is answered here: the viewer is offered no authentication (vm/vnc-proxy.ts)
      await authenticateToServer(
        (n) => fromServer.read(n),
        (b) => sock.write(b),
        task.vnc_password,
      );
    } catch (err) {
      sock.destroy();
      this.d.log.warn({ task_id: task.task_id, err: (err as Error).message }, 'vnc handshake with QEMU failed');
      throw NodeErrors.consoleNotRunning();
    }
    const fromViewer = new ByteReader();
    ch.onData((d) => fromViewer.push(d));
    ch.onClose(() => {
      fromViewer.fail(new Error('the viewer went away'));
      sock.destroy();
    });
    sock.removeAllListeners('data');
    sock.on('data', (d: Buffer) => ch.send(d));
    sock.on('close', () => ch.close('the display closed'));
    const early = fromServer.rest();
    if (early.length > 0) ch.send(early);
    offerNoAuth(
      (n) => fromViewer.read(n),
      (b) => ch.send(b),
    ).then(
      () => {
        const rest = fromViewer.rest();
        if (rest.length > 0) sock.write(rest);
        ch.onData((d) => sock.write(d));
      },
      () => ch.close('the viewer did not complete the RFB handshake'),
    );
  }
}
