// Is a host port free right now? Bind it and close at once. Racy by nature (another process may take it a moment
// later), so callers still handle a bind failure from QEMU.
import net from 'node:net';
import dgram from 'node:dgram';

export async function isHostPortFree(port: number, host: string, proto: 'tcp' | 'udp'): Promise<boolean> {
  if (!Number.isInteger(port) || port < 1 || port > 65535) return false;
  if (proto === 'udp') {
    const type = net.isIPv6(host) ? 'udp6' : 'udp4';
    return new Promise<boolean>((resolve) => {
      const sock = dgram.createSocket({ type, reuseAddr: false });
      sock.once('error', () => {
        sock.close();
        resolve(false);
      });
      sock.bind({ port, address: host, exclusive: true }, () => {
        sock.close(() => resolve(true));
      });
    });
  }
  return new Promise<boolean>((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
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
