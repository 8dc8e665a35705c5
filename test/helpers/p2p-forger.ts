// A hostile peer for the e2e tests, run as its own process:
//   node dist/test/helpers/p2p-forger.js <seed multiaddr> <client multiaddr> <victim node_id>
// It joins the network, serves /dbc/rpc/1.0.0 (counting every stream it gets: a client must never open one), and
// pushes two forged bindings to the seed and the client and puts them in the DHT:
//   - the victim's node_id bound to the forger's peer id, signed with the forger's own sr25519 key;
//   - a node_id nobody holds (`ghost`), with a made-up signature.
// Prints one JSON line {"ghost", "peer_id", "verdicts"} when done, then {"rpc_streams": n} on every stream and on
// SIGTERM before exiting.
import '../../src/p2p/polyfill.js';
import { randomBytes } from 'node:crypto';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { identityFromSeed } from '../../src/auth/identity.js';
import { cryptoReady } from '../../src/auth/verify.js';
import { bindingDhtKey, encodeBinding, makeBinding, type SignedBinding } from '../../src/p2p/binding.js';
import { pushBinding } from '../../src/p2p/directory.js';
import { createHost, hostMultiaddrs } from '../../src/p2p/host.js';
import { RPC_PROTOCOL } from '../../src/p2p/rpc.js';
import { multiaddr } from '@multiformats/multiaddr';

const [seedAddr, clientAddr, victim] = process.argv.slice(2);
if (!seedAddr || !clientAddr || !victim) throw new Error('usage: p2p-forger <seed> <client> <victim node_id>');

await cryptoReady();
const host = await createHost({ role: 'node', privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], seeds: [seedAddr] });
let rpcStreams = 0;
await host.handle(
  RPC_PROTOCOL,
  (stream) => {
    rpcStreams++;
    console.log(JSON.stringify({ rpc_streams: rpcStreams }));
    stream.abort(new Error('forger'));
  },
  { runOnLimitedConnection: true },
);

const me = identityFromSeed(`0x${randomBytes(32).toString('hex')}`);
const ghost = identityFromSeed(`0x${randomBytes(32).toString('hex')}`).nodeId;
const addrs = hostMultiaddrs(host);
const now = Date.now();
const claimVictim = makeBinding({ nodeId: victim, sign: me.sign, peerId: host.peerId.toString(), addrs, version: '0.4.1.8', name: 'forged', now: now + 1000 });
const claimGhost: SignedBinding = {
  ...makeBinding({ nodeId: ghost, sign: me.sign, peerId: host.peerId.toString(), addrs, version: '0.4.1.8', name: 'ghost', now }),
  sig: randomBytes(64).toString('hex'),
};

const verdicts: Record<string, string> = {};
for (const [label, target] of [
  ['seed', seedAddr],
  ['client', clientAddr],
] as const) {
  const ma = multiaddr(target);
  const peer = ma.getComponents().find((c) => c.name === 'p2p')?.value;
  await host.dial(ma, { signal: AbortSignal.timeout(10_000) });
  for (const [what, b] of [
    ['victim', claimVictim],
    ['ghost', claimGhost],
  ] as const) {
    verdicts[`${label}:${what}`] = await pushBinding(host, peer!, b).catch((e: Error) => `error: ${e.message}`);
  }
}
for (const [what, b] of [
  ['victim', claimVictim],
  ['ghost', claimGhost],
] as const) {
  try {
    for await (const _ of host.services.dht.put(bindingDhtKey(b.node_id), encodeBinding(b), { signal: AbortSignal.timeout(5000) })) {
      // drain
    }
    verdicts[`dht:${what}`] = 'put';
  } catch (e) {
    verdicts[`dht:${what}`] = `error: ${(e as Error).message}`;
  }
}
console.log(JSON.stringify({ ghost, peer_id: host.peerId.toString(), verdicts }));

process.once('SIGTERM', () => {
  console.log(JSON.stringify({ rpc_streams: rpcStreams }));
  void Promise.resolve(host.stop()).finally(() => process.exit(0));
});
