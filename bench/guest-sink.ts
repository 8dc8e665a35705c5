// A forwarded-TCP sink in the test guest, shared by the throughput benches: busybox `nc -l -p 5001 | wc -c` is
// (re)started over SSH, the bench writes `bytes` to the host port forwarded to 5001, half-closes, and times until the
// guest closes; the guest's byte count must then equal what was sent.
import net from 'node:net';
import { sshExec, waitFor } from '../test/helpers/devnet.js';

export interface GuestSink {
  host: string;
  ssh: number;
  /** the host port forwarded to the guest's 5001 */
  data: number;
  password: string;
}

/** MiB/s from connect to the guest's close */
export async function sendToGuest(vm: GuestSink, bytes: number): Promise<number> {
  // pkill -x: an -f pattern would match this very shell's command line; `sleep |` keeps nc's stdin open (nc quits on stdin EOF)
  await sshExec(
    vm.host,
    vm.ssh,
    'dbc',
    vm.password,
    'pkill -x nc; rm -f /tmp/fwd.count; (sleep 300 | nc -l -p 5001 | wc -c > /tmp/fwd.count 2>&1 &) ; sleep 0.3',
    15_000,
  );
  const chunk = Buffer.alloc(256 * 1024, 0x5a);
  return new Promise<number>((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const sock = net.connect(vm.data, vm.host);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error('transfer timeout'));
    }, 180_000);
    let sent = 0;
    const pump = () => {
      while (sent < bytes) {
        sent += chunk.length;
        if (!sock.write(chunk)) return sock.once('drain', pump);
      }
      sock.end();
    };
    sock.on('connect', pump);
    sock.on('data', () => undefined);
    let failed = false;
    sock.on('error', (e) => {
      failed = true;
      clearTimeout(timer);
      reject(e);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      if (failed) return;
      resolve(bytes / 1024 / 1024 / (Number(process.hrtime.bigint() - t0) / 1e9));
    });
  });
}

/** throws unless the guest counted exactly `bytes` */
export async function checkGuestReceived(vm: GuestSink, bytes: number): Promise<void> {
  const count = await waitFor(
    'guest byte count',
    async () => {
      const out = (await sshExec(vm.host, vm.ssh, 'dbc', vm.password, 'cat /tmp/fwd.count 2>/dev/null', 15_000)).trim();
      return /^\d+$/.test(out) ? Number(out) : undefined;
    },
    30_000,
    500,
  );
  if (count !== bytes) throw new Error(`the guest received ${count} bytes of ${bytes}`);
}
