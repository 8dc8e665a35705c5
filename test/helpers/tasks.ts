// Polling helpers on top of the DBC API for tests.
import net from 'node:net';
import { join } from 'node:path';
import { post, signedBody, waitFor, type Devnet } from './devnet.js';

/** a free TCP port in the VNC range (5900..65535) */
export async function freeVncPort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 5900 + Math.floor(Math.random() * 3000);
    const free = await new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error('no free VNC port');
}

export async function taskDetail(d: Devnet, taskId: string, seed = d.renter.seed): Promise<any> {
  const r = await post(d.api, `tasks/${taskId}`, signedBody(d.node_id, seed));
  if (r.body.errcode !== 0) throw new Error(`detail ${taskId}: ${r.text}`);
  return r.body.message;
}

export async function taskStatus(d: Devnet, taskId: string): Promise<string> {
  return (await taskDetail(d, taskId)).status;
}

export async function waitStatus(d: Devnet, taskId: string, status: string, timeoutMs: number, seed = d.renter.seed): Promise<any> {
  let last = '';
  try {
    return await waitFor(
      `status ${status}`,
      async () => {
        const detail = await taskDetail(d, taskId, seed);
        last = `${detail.status} ${detail.last_error ?? ''}`;
        return detail.status === status ? detail : undefined;
      },
      timeoutMs,
      500,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last status: ${last}\n${d.output().slice(-2000)}`);
  }
}

export async function waitOperation(d: Devnet, operationId: string, timeoutMs: number): Promise<any> {
  return waitFor(
    `operation ${operationId}`,
    async () => {
      const r = await post(d.api, `operations/${operationId}`, signedBody(d.node_id, d.renter.seed));
      if (r.body.errcode !== 0) throw new Error(r.text);
      const op = r.body.message;
      return op.status === 'done' || op.status === 'failed' ? op : undefined;
    },
    timeoutMs,
    500,
  );
}

/** the host file behind a path as replies show it (`/data/<name>`, `/data/vm/<task_id>/<name>`) */
export function hostPathOf(d: { dataDir: string }, shown: string): string {
  if (shown.startsWith('/data/vm/')) return join(d.dataDir, 'vms', shown.slice('/data/vm/'.length));
  if (shown.startsWith('/data/')) return join(d.dataDir, 'images', shown.slice('/data/'.length));
  throw new Error(`not a /data path: ${shown}`);
}
