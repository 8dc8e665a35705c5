// Is a host port free right now? Bind it and close at once. Racy by nature (another process may take it a moment
// later), so callers still handle a bind failure from QEMU.
// Only EADDRINUSE and EACCES mean "not free". Anything else (EMFILE/ENFILE: the host is out of file descriptors,
// ENOBUFS, EADDRNOTAVAIL, ...) says nothing about the port and is thrown as a PortProbeError, a DbcError whose text
// the renter may see: `tasks/start` must not answer a false `ssh_port is occupied`.
import net from 'node:net';
import dgram from 'node:dgram';
import { DbcError, NodeErrors } from '../errors/index.js';

const NOT_FREE = new Set(['EADDRINUSE', 'EACCES']);

/** a registry error (NodeErrors.portProbe*) that also carries the errno */
export class PortProbeError extends DbcError {
  constructor(
    readonly errno: string,
    from: DbcError,
  ) {
    super(from.code, from.errcode, from.message, from.httpStatus);
    this.name = 'PortProbeError';
  }
}

/** the error a failed probe bind turns into: false (the port is taken) or a PortProbeError to throw */
export function probeFailure(err: unknown): false | PortProbeError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? 'UNKNOWN';
  if (NOT_FREE.has(code)) return false;
  if (code === 'EMFILE' || code === 'ENFILE') {
    return new PortProbeError(code, NodeErrors.portProbeFds());
  }
  if (code === 'ENOBUFS' || code === 'ENOMEM') return new PortProbeError(code, NodeErrors.portProbeMemory());
  return new PortProbeError(code, NodeErrors.portProbeFailed(code));
}

export async function isHostPortFree(port: number, host: string, proto: 'tcp' | 'udp'): Promise<boolean> {
  if (!Number.isInteger(port) || port < 1 || port > 65535) return false;
  if (proto === 'udp') {
    const type = net.isIPv6(host) ? 'udp6' : 'udp4';
    return new Promise<boolean>((resolve, reject) => {
      let sock: dgram.Socket;
      try {
        sock = dgram.createSocket({ type, reuseAddr: false });
      } catch (err) {
        const f = probeFailure(err);
        if (f === false) resolve(false);
        else reject(f);
        return;
      }
      sock.once('error', (err) => {
        try {
          sock.close();
        } catch {
          // never bound
        }
        const f = probeFailure(err);
        if (f === false) resolve(false);
        else reject(f);
      });
      sock.bind({ port, address: host, exclusive: true }, () => {
        sock.close(() => resolve(true));
      });
    });
  }
  return new Promise<boolean>((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', (err) => {
      const f = probeFailure(err);
      if (f === false) resolve(false);
      else reject(f);
    });
    server.listen({ port, host, exclusive: true }, () => {
      server.close(() => resolve(true));
    });
  });
}

/** a port the kernel considers free now (bind port 0) */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port: 0, host, exclusive: true }, () => {
      const addr = server.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}
