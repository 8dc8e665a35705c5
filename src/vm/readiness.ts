// When a booted VM counts as reachable. Strong signals, the first of which ends the wait: the SSH (RDP for windows)
// port answers through its forward with a banner (QEMU's hostfwd accepts a connection before the guest listens, so
// a bare connect proves nothing), or the serial console shows, since this boot, our test image's DBC_GUEST_READY
// (written once its sshd listens) or cloud-init's "Cloud-init v. … finished"; a login prompt counts only when no
// port can be probed. The guest agent's guest-ping is a weak signal: in a stock cloud image qemu-ga answers tens of
// seconds before cloud-init has made the user and sshd listens, so after it answers the wait goes on for a strong
// signal for at most agentGraceMs (an image without sshd still turns running then). The lifecycle waits outside
// the task's lock (docs/guest-readiness.md).
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import net from 'node:net';
import type { Hypervisor } from './types.js';

export type ReadySignal = 'agent' | 'ssh' | 'rdp' | 'serial';

/** lines on the serial console that mean the guest is up */
export const SERIAL_READY_MARKERS: RegExp[] = [/DBC_GUEST_READY/, /Cloud-init v\. \S+ finished/];
/** a getty's prompt: a strong signal only where no port can be probed (sshd may start a moment later) */
export const SERIAL_LOGIN_PROMPT = /^\S+ login: ?$/m;
/** how long a strong signal is waited for once the agent answered */
export const AGENT_GRACE_MS = 90_000;

export interface ReadinessProbe {
  hv: Pick<Hypervisor, 'agent'>;
  taskId: string;
  /** the serial log file and its size when this boot started (only what came after counts) */
  serialLog: string;
  serialFrom: number;
  /** where the guest's SSH or RDP port answers on the host (user mode's forward); none: not probed */
  port?: { host: string; port: number; protocol: 'ssh' | 'rdp' };
}

/** bytes of the serial log since `from` (at most the last 256 KiB of them) */
function serialSince(file: string, from: number): string {
  if (!existsSync(file)) return '';
  const size = statSync(file).size;
  if (size <= from) return '';
  const start = Math.max(from, size - 256 * 1024);
  const buf = Buffer.alloc(size - start);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, buf, 0, buf.length, start);
  } finally {
    closeSync(fd);
  }
  return buf.toString('utf8').replace(/\r/g, '');
}

export function serialSize(file: string): number {
  return existsSync(file) ? statSync(file).size : 0;
}

/** an X.224 connection request, the first thing an RDP client sends; a server answers with a TPKT (03 00) */
const X224_CR = Buffer.from('030000130ee000000000000100080003000000', 'hex');

/** true when host:port answers like an SSH (banner `SSH-`) or RDP (TPKT) server within timeoutMs */
export function bannerAnswers(host: string, port: number, protocol: 'ssh' | 'rdp', timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    let got = Buffer.alloc(0);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.on('connect', () => {
      if (protocol === 'rdp') sock.write(X224_CR);
    });
    sock.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (protocol === 'ssh' && got.length >= 4) done(got.subarray(0, 4).toString('latin1') === 'SSH-');
      if (protocol === 'rdp' && got.length >= 2) done(got[0] === 0x03 && got[1] === 0x00);
    });
    sock.on('error', () => done(false));
    sock.on('close', () => done(false));
  });
}

/** the serial console's strong signal since this boot ('serial'), or undefined */
function serialSignal(p: ReadinessProbe): ReadySignal | undefined {
  const text = serialSince(p.serialLog, p.serialFrom);
  if (SERIAL_READY_MARKERS.some((re) => re.test(text))) return 'serial';
  if (!p.port && SERIAL_LOGIN_PROMPT.test(text)) return 'serial';
  return undefined;
}

/** a banner probe may wait this long: sshd re-execs itself per connection, ~300 ms under TCG when idle, seconds at boot */
export const BANNER_TIMEOUT_MS = 5000;
/** banner probes in flight at once: a new dial gets a fresh SYN from QEMU's slirp (a held one backs off), and sshd's
 * MaxStartups (10 unauthenticated) is never approached */
const BANNER_IN_FLIGHT = 3;

/**
 * Probe every intervalMs until the guest is up (a strong signal, or the agent's once agentGraceMs passed since it
 * first answered), the cap passes ('timeout'), or stop() says the wait is no longer wanted ('stopped': another action
 * took the task over, the VM went away, the node closes). Banner probes overlap: one is started each round while
 * fewer than BANNER_IN_FLIGHT wait, each given BANNER_TIMEOUT_MS.
 */
export async function waitGuestReady(
  p: ReadinessProbe,
  o: { capMs: number; intervalMs?: number; agentGraceMs?: number; bannerTimeoutMs?: number; stop: () => boolean; signal?: AbortSignal },
): Promise<ReadySignal | 'timeout' | 'stopped'> {
  const end = Date.now() + o.capMs;
  let agentAt: number | undefined;
  let bannerSeen = false;
  let inFlight = 0;
  let agentPending = false;
  let agentOk = false;
  const stopped = () => o.stop() || o.signal?.aborted === true;
  for (;;) {
    if (stopped()) return 'stopped';
    const serial = serialSignal(p);
    if (serial) return serial;
    if (bannerSeen && p.port) return p.port.protocol;
    if (p.port && inFlight < BANNER_IN_FLIGHT) {
      inFlight++;
      void bannerAnswers(p.port.host, p.port.port, p.port.protocol, o.bannerTimeoutMs ?? BANNER_TIMEOUT_MS).then((ok) => {
        inFlight--;
        if (ok) bannerSeen = true;
      });
    }
    if (!agentPending && !agentOk) {
      agentPending = true;
      p.hv.agent(p.taskId, 'guest-ping', {}, 1000).then(
        () => ((agentOk = true), (agentPending = false)),
        () => (agentPending = false),
      );
    }
    if (agentOk) {
      agentAt ??= Date.now();
      if (Date.now() - agentAt >= (o.agentGraceMs ?? AGENT_GRACE_MS)) return 'agent';
    }
    if (Date.now() >= end) return agentAt === undefined ? 'timeout' : 'agent';
    await new Promise((res) => setTimeout(res, Math.min(o.intervalMs ?? 250, Math.max(0, end - Date.now()))));
  }
}
