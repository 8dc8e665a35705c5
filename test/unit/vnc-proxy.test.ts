// The VNC side of the proxy (vm/vnc-proxy.ts): the DES response QEMU expects, and both handshakes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { authenticateToServer, ByteReader, offerNoAuth, vncAuthResponse } from '../../src/vm/vnc-proxy.js';

test('the VNC response is single DES of the challenge under the bit-mirrored password (FIPS 46 vector)', () => {
  // key 13 34 57 79 9B BC DF F1 mirrored byte by byte is the password; 0123456789ABCDEF -> 85E813540F0AB405
  const password = Buffer.from([0xc8, 0x2c, 0xea, 0x9e, 0xd9, 0x3d, 0xfb, 0x8f]).toString('latin1');
  const block = Buffer.from('0123456789abcdef', 'hex');
  const out = vncAuthResponse(password, Buffer.concat([block, block]));
  assert.equal(out.toString('hex'), '85e813540f0ab405'.repeat(2));
  // a password shorter than 8 bytes is zero-padded, a longer one cut
  assert.equal(vncAuthResponse('ab', block).length, 8);
  assert.deepEqual(vncAuthResponse('abcdefghXYZ', block), vncAuthResponse('abcdefgh', block));
});

test('the proxy authenticates to a server that asks for VNC auth, and offers the viewer None', async () => {
  const fromServer = new ByteReader();
  const sent: Buffer[] = [];
  const challenge = Buffer.alloc(16, 7);
  const done = authenticateToServer(
    (n) => fromServer.read(n),
    (b) => sent.push(b),
    'secret12',
  );
  fromServer.push(Buffer.from('RFB 003.008\n'));
  fromServer.push(Buffer.from([2, 1, 2])); // None and VNC auth: VNC auth is chosen
  fromServer.push(challenge);
  fromServer.push(Buffer.alloc(4));
  await done;
  assert.equal(sent[0]!.toString(), 'RFB 003.008\n');
  assert.deepEqual([...sent[1]!], [2]);
  assert.deepEqual(sent[2], vncAuthResponse('secret12', challenge));

  const failed = new ByteReader();
  const bad = authenticateToServer(
    (n) => failed.read(n),
    () => undefined,
    'x',
  );
  failed.push(Buffer.from('RFB 003.008\n'));
  failed.push(Buffer.from([1, 2]));
  failed.push(challenge);
  failed.push(Buffer.from([0, 0, 0, 1]));
  await assert.rejects(bad, /VNC authentication failed/);

  const fromViewer = new ByteReader();
  const toViewer: Buffer[] = [];
  const offered = offerNoAuth(
    (n) => fromViewer.read(n),
    (b) => toViewer.push(b),
  );
  fromViewer.push(Buffer.from('RFB 003.008\n'));
  fromViewer.push(Buffer.from([1, 1])); // the choice, then ClientInit already
  await offered;
  assert.deepEqual(
    toViewer.map((b) => b.toString('hex')),
    [Buffer.from('RFB 003.008\n').toString('hex'), '0101', '00000000'],
  );
  assert.deepEqual([...fromViewer.rest()], [1]); // ClientInit is left for the pipe
});
