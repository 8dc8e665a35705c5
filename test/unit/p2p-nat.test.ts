// The NAT protocols' defences, in process on loopback: the protobuf codec refuses what is malformed; a seed's AutoNAT
// server never dials a third party or itself for someone, refuses a request in another peer's name, and survives
// garbage; a DCUtR CONNECT cannot make a peer dial in a loop or dial what is not plain TCP.
import '../../src/p2p/polyfill.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { multiaddr } from '@multiformats/multiaddr';
import { createHost, type Host } from '../../src/p2p/host.js';
import { AUTONAT_PROTOCOL, AutonatStatus, DCUTR_PROTOCOL, NatService, tcpEndpoint } from '../../src/p2p/nat.js';
import { pbBytes, pbBytesList, pbDecode, pbEncode, pbNumber } from '../../src/p2p/pb.js';
import { framed } from '../../src/p2p/rpc.js';

test('protobuf: round trip of varints and bytes; truncated or unknown wire types throw', () => {
  const b = pbEncode([
    [1, 300],
    [2, Uint8Array.of(1, 2, 3)],
    [2, Uint8Array.of()],
    [3, 2 ** 40],
  ]);
  const f = pbDecode(b);
  assert.equal(pbNumber(f, 1), 300);
  assert.deepEqual(
    pbBytesList(f, 2).map((x) => [...x]),
    [[1, 2, 3], []],
  );
  assert.equal(pbNumber(f, 3), 2 ** 40);
  assert.equal(pbBytes(f, 9), undefined);
  assert.throws(() => pbDecode(Uint8Array.of(0x12, 0x05, 1)), /truncated/);
  assert.throws(() => pbDecode(Uint8Array.of(0x0b)), /wire type/);
  assert.throws(() => pbDecode(Uint8Array.of(0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)), /varint/);
});

test('tcpEndpoint takes plain /ip4|ip6/../tcp/.. only', () => {
  assert.deepEqual(tcpEndpoint(multiaddr('/ip4/198.51.100.2/tcp/4001')), { host: '198.51.100.2', port: 4001 });
  assert.equal(tcpEndpoint(multiaddr('/ip4/198.51.100.2/udp/4001')), undefined);
  assert.equal(tcpEndpoint(multiaddr('/dns4/example.com/tcp/4001')), undefined);
  assert.equal(tcpEndpoint(multiaddr('/ip4/198.51.100.2/tcp/4001/p2p-circuit')), undefined);
});

describe('AutoNAT server and DCUtR on loopback', () => {
  let seed: Host;
  let peer: Host;
  let seedNat: NatService;
  let peerNat: NatService;

  before(async () => {
    seed = await createHost({ role: 'seed', privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] });
    seedNat = new NatService({ host: seed, serveAutonat: true });
    await seedNat.start();
    peer = await createHost({ role: 'client', privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], dhtServer: false });
    peerNat = new NatService({ host: peer, punch: true, seedPeers: [seed.peerId.toString()], recheckMs: 3_600_000 });
    await peerNat.start();
    await peer.dial(seed.getMultiaddrs()[0]!);
  });
  after(async () => {
    await peerNat?.stop();
    await seedNat?.stop();
    await peer?.stop();
    await seed?.stop();
  });

  /** send one raw AutoNAT message from `peer` to the seed; the decoded DialResponse, or the error */
  async function ask(body: Uint8Array): Promise<{ status?: number; text: string } | Error> {
    const stream = await peer.dialProtocol(seed.peerId, AUTONAT_PROTOCOL, { signal: AbortSignal.timeout(10_000) });
    const lp = framed(stream, 4096);
    try {
      await lp.write(body);
      const reply = pbDecode((await lp.read({ signal: AbortSignal.timeout(10_000) })).subarray());
      const resp = pbDecode(pbBytes(reply, 3) ?? new Uint8Array());
      return { status: pbNumber(resp, 1) ?? AutonatStatus.OK, text: new TextDecoder().decode(pbBytes(resp, 2) ?? new Uint8Array()) };
    } catch (err) {
      return err as Error;
    }
  }
  const dialRequest = (id: Uint8Array, addrs: string[]) =>
    pbEncode([
      [1, 0],
      [2, pbEncode([[1, pbEncode([[1, id], ...addrs.map((a): [number, Uint8Array] => [2, multiaddr(a).bytes])])]])],
    ]);

  test('a request to dial a third party is refused (no amplification through a seed)', async () => {
    const r = await ask(dialRequest(peer.peerId.toMultihash().bytes, ['/ip4/192.0.2.77/tcp/80', '/ip4/10.1.2.3/tcp/22']));
    assert.ok(!(r instanceof Error), String(r));
    assert.equal(r.status, AutonatStatus.E_DIAL_REFUSED);
    assert.equal(r.text, 'no address to dial');
  });

  test("a request in another peer's name is refused", async () => {
    const r = await ask(dialRequest(seed.peerId.toMultihash().bytes, ['/ip4/127.0.0.1/tcp/1']));
    assert.ok(!(r instanceof Error), String(r));
    assert.equal(r.status, AutonatStatus.E_BAD_REQUEST);
    assert.equal(r.text, 'peer id mismatch');
  });

  test('the seed never dials its own addresses for someone (the requester shares its host here)', async () => {
    const own = tcpEndpoint(
      multiaddr(
        seed
          .getMultiaddrs()[0]!
          .toString()
          .replace(/\/p2p\/.*/, ''),
      ),
    )!;
    const r = await ask(dialRequest(peer.peerId.toMultihash().bytes, [`/ip4/127.0.0.1/tcp/${own.port}`]));
    assert.ok(!(r instanceof Error), String(r));
    assert.equal(r.status, AutonatStatus.E_DIAL_REFUSED);
  });

  test('garbage and a message that is not a dial get an error or a reset, and the seed goes on answering', async () => {
    const g = await ask(Uint8Array.of(0x0b, 0xff, 0x00));
    assert.ok(g instanceof Error || g.status === AutonatStatus.E_BAD_REQUEST);
    const notDial = await ask(pbEncode([[1, 1]]));
    assert.ok(!(notDial instanceof Error));
    assert.equal(notDial.status, AutonatStatus.E_BAD_REQUEST);
    const again = await ask(dialRequest(peer.peerId.toMultihash().bytes, ['/ip4/192.0.2.77/tcp/80']));
    assert.ok(!(again instanceof Error) && again.status === AutonatStatus.E_DIAL_REFUSED);
  });

  test('DCUtR over a direct connection is refused, and a CONNECT naming non-TCP addresses makes nobody dial', async () => {
    // peer serves DCUtR; the seed plays a hostile remote on the direct connection between them
    const before = peerNat.status().punch_attempts;
    const stream = await seed.dialProtocol(peer.peerId, DCUTR_PROTOCOL, { signal: AbortSignal.timeout(10_000), runOnLimitedConnection: true });
    const lp = framed(stream, 4096);
    // the stream is reset (before or after our CONNECT arrives): no CONNECT comes back
    await assert.rejects(async () => {
      await lp.write(
        pbEncode([
          [1, 100],
          [2, multiaddr('/dns4/victim.example/tcp/443').bytes],
          [2, multiaddr('/ip4/192.0.2.1/udp/53').bytes],
        ]),
      );
      await lp.read({ signal: AbortSignal.timeout(10_000) });
    });
    assert.equal(peerNat.status().punch_attempts, before);
  });
});
