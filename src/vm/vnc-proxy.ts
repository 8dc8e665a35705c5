// The node's side of a VNC display shared over a websocket: it answers QEMU's VNC authentication itself (RFB 3.8,
// security type 2: DES of the 16-byte challenge keyed by the password) and offers the viewer security type None, so
// the renter's browser never needs the VNC password. Single DES is not in Node 20's OpenSSL 3 default provider;
// two-key triple DES with both keys equal (E_K(D_K(E_K(x)))) is the same cipher and is.
import { createCipheriv } from 'node:crypto';

const VERSION = Buffer.from('RFB 003.008\n', 'latin1');

/** bytes arrive in chunks; handshake steps ask for exact counts */
export class ByteReader {
  private buf = Buffer.alloc(0);
  private waiter?: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void };
  private failed?: Error;

  push(d: Uint8Array): void {
    this.buf = Buffer.concat([this.buf, d]);
    this.serve();
  }

  fail(err: Error): void {
    this.failed = err;
    this.waiter?.reject(err);
    this.waiter = undefined;
  }

  read(n: number): Promise<Buffer> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.waiter = { n, resolve, reject };
      this.serve();
    });
  }

  /** what arrived beyond the handshake (the first protocol messages): handed on to the pipe */
  rest(): Buffer {
    const r = this.buf;
    this.buf = Buffer.alloc(0);
    return r;
  }

  private serve(): void {
    const w = this.waiter;
    if (!w || this.buf.length < w.n) return;
    this.waiter = undefined;
    const out = this.buf.subarray(0, w.n);
    this.buf = this.buf.subarray(w.n);
    w.resolve(Buffer.from(out));
  }
}

/** the VNC authentication response: each challenge half DES-encrypted with the password's bytes, bits mirrored */
export function vncAuthResponse(password: string, challenge: Buffer): Buffer {
  const key = Buffer.alloc(8);
  Buffer.from(password, 'latin1').copy(key, 0, 0, 8);
  for (let i = 0; i < 8; i++) {
    let b = key[i]!;
    let r = 0;
    for (let bit = 0; bit < 8; bit++) {
      r = (r << 1) | (b & 1);
      b >>= 1;
    }
    key[i] = r;
  }
  const cipher = createCipheriv('des-ede-ecb', Buffer.concat([key, key]), null);
  cipher.setAutoPadding(false);
  return Buffer.concat([cipher.update(challenge), cipher.final()]);
}

/** client side of the handshake with QEMU's VNC server, up to (not including) ClientInit; throws with the reason */
export async function authenticateToServer(read: (n: number) => Promise<Buffer>, write: (b: Buffer) => void, password: string): Promise<void> {
  const version = (await read(12)).toString('latin1');
  if (!/^RFB 003\.00[378]\n$/.test(version)) throw new Error(`not a VNC server (${JSON.stringify(version)})`);
  write(VERSION);
  const n = (await read(1))[0]!;
  if (n === 0) {
    const len = (await read(4)).readUInt32BE(0);
    throw new Error(`VNC server refused: ${(await read(Math.min(len, 1024))).toString('utf8')}`);
  }
  const types = [...(await read(n))];
  if (types.includes(2)) {
    write(Buffer.from([2]));
    write(vncAuthResponse(password, await read(16)));
  } else if (types.includes(1)) {
    write(Buffer.from([1]));
  } else {
    throw new Error(`no VNC security type we speak (${types.join(',')})`);
  }
  if ((await read(4)).readUInt32BE(0) !== 0) throw new Error('VNC authentication failed');
}

/** server side toward the viewer: RFB 3.8 with security type None, up to ClientInit (which the pipe forwards) */
export async function offerNoAuth(read: (n: number) => Promise<Buffer>, write: (b: Buffer) => void): Promise<void> {
  write(VERSION);
  const version = (await read(12)).toString('latin1');
  if (!/^RFB 003\.00[378]\n$/.test(version)) throw new Error('the viewer does not speak RFB');
  write(Buffer.from([1, 1])); // one security type: None
  if ((await read(1))[0] !== 1) throw new Error('the viewer chose another security type');
  write(Buffer.alloc(4)); // SecurityResult OK
}
