import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { DbcError } from '../../src/protocol/errors.js';
import { expandForwards, hostPorts, parseCustomPort, parseCustomPorts, parsePort } from '../../src/net/ports.js';
import { freePort, isHostPortFree } from '../../src/net/port-probe.js';

const refused = (entry: string) => (err: unknown) =>
  err instanceof DbcError && err.code === 'NODE_CUSTOM_PORT_INVALID' && err.message === `custom_port is invalid: ${entry}`;

test('every custom_port form of the original parses', () => {
  assert.deepEqual(parseCustomPort('tcp,123'), { proto: 'tcp', hostFrom: 123, hostTo: 123, guestFrom: 123, guestTo: 123 });
  assert.deepEqual(parseCustomPort('udp,111:222'), { proto: 'udp', hostFrom: 111, hostTo: 111, guestFrom: 222, guestTo: 222 });
  assert.deepEqual(parseCustomPort('tcp,333-444'), { proto: 'tcp', hostFrom: 333, hostTo: 444, guestFrom: 333, guestTo: 444 });
  assert.deepEqual(parseCustomPort('tcp,555-666:777-888'), {
    proto: 'tcp',
    hostFrom: 555,
    hostTo: 666,
    guestFrom: 777,
    guestTo: 888,
  });
});

test('spaces are trimmed and the protocol is case-insensitive', () => {
  assert.deepEqual(parseCustomPort(' TCP , 8080 : 80 '), { proto: 'tcp', hostFrom: 8080, hostTo: 8080, guestFrom: 80, guestTo: 80 });
  assert.equal(parseCustomPort('Udp,53').proto, 'udp');
  assert.deepEqual(parseCustomPort('tcp,1-1'), { proto: 'tcp', hostFrom: 1, hostTo: 1, guestFrom: 1, guestTo: 1 });
  assert.equal(parseCustomPort('tcp,65535').hostTo, 65535);
});

test('malformed entries are refused with the custom_port error', () => {
  for (const bad of [
    'tcp,0',
    'tcp,70000',
    'icmp,22',
    'tcp,5-3',
    'tcp,1-3:4-9',
    'tcp,22;rm -rf',
    'tcp,,22',
    'tcp',
    'tcp,',
    ',22',
    'tcp,22:',
    'tcp,:22',
    'tcp,1:2:3',
    'tcp,-5',
    'tcp,5-',
    'tcp,1.5',
    'tcp,0x16',
    'tcp,22 23',
    'tcp,1-1001',
    '',
    'tcp,22:0',
    'tcp,100-200:65500-65600',
  ]) {
    assert.throws(() => parseCustomPort(bad), refused(bad), bad);
  }
  assert.throws(() => parseCustomPort(22 as unknown as string), refused('22'));
  assert.doesNotThrow(() => parseCustomPort('tcp,1-1000'));
});

test('a custom_port list is an array or the JSON text of one; empty values mean none', () => {
  assert.deepEqual(parseCustomPorts(undefined), []);
  assert.deepEqual(parseCustomPorts(null), []);
  assert.deepEqual(parseCustomPorts(''), []);
  assert.deepEqual(parseCustomPorts('undefined'), []);
  assert.deepEqual(parseCustomPorts([]), []);
  assert.deepEqual(parseCustomPorts('[]'), []);
  const fromArray = parseCustomPorts(['tcp,123', 'udp,123', 'tcp,8000-8002:9000-9002']);
  const fromJson = parseCustomPorts('["tcp,123","udp,123","tcp,8000-8002:9000-9002"]');
  assert.deepEqual(fromJson, fromArray);
  assert.equal(fromArray.length, 3);
});

test('bad lists are refused: non-strings, not an array, duplicates, too many ports', () => {
  assert.throws(() => parseCustomPorts([22]), refused('22'));
  assert.throws(() => parseCustomPorts(['tcp,22', { a: 1 }]), refused('{"a":1}'));
  assert.throws(() => parseCustomPorts('tcp,22'), refused('tcp,22')); // not JSON
  assert.throws(
    () => parseCustomPorts('{"a":1}'),
    (e: unknown) => e instanceof DbcError && e.code === 'NODE_CUSTOM_PORT_INVALID',
  );
  assert.throws(
    () => parseCustomPorts(42),
    (e: unknown) => e instanceof DbcError && e.code === 'NODE_CUSTOM_PORT_INVALID',
  );
  assert.throws(() => parseCustomPorts(['tcp,22', 'tcp,22']), /port conflict, exist custom_port = 22/);
  assert.throws(() => parseCustomPorts(['tcp,100-200', 'TCP,150:22']), /port conflict, exist custom_port = 150/);
  const five = ['tcp,1000-1999', 'tcp,2000-2999', 'tcp,3000-3999', 'tcp,4000-4999', 'tcp,5000-5095'];
  assert.equal(hostPorts(parseCustomPorts(five)).length, 4096);
  assert.throws(() => parseCustomPorts([...five.slice(0, 4), 'tcp,5000-5096']), refused('tcp,5000-5096'));
});

test('expandForwards gives one forward per port, host ranges mapped onto guest ranges', () => {
  const fwd = expandForwards(parseCustomPorts(['udp,111:222', 'tcp,555-557:777-779', 'tcp,333']), '0.0.0.0');
  assert.deepEqual(fwd, [
    { proto: 'udp', hostAddr: '0.0.0.0', hostPort: 111, guestPort: 222 },
    { proto: 'tcp', hostAddr: '0.0.0.0', hostPort: 555, guestPort: 777 },
    { proto: 'tcp', hostAddr: '0.0.0.0', hostPort: 556, guestPort: 778 },
    { proto: 'tcp', hostAddr: '0.0.0.0', hostPort: 557, guestPort: 779 },
    { proto: 'tcp', hostAddr: '0.0.0.0', hostPort: 333, guestPort: 333 },
  ]);
  assert.deepEqual(hostPorts(parseCustomPorts(['udp,111:222', 'tcp,10-11'])), [
    { proto: 'udp', port: 111 },
    { proto: 'tcp', port: 10 },
    { proto: 'tcp', port: 11 },
  ]);
});

test('parsePort takes digit strings and integers in 1..65535', () => {
  assert.equal(parsePort('22'), 22);
  assert.equal(parsePort(' 5904 '), 5904);
  assert.equal(parsePort(65535), 65535);
  for (const bad of [0, 65536, -1, 22.5, '0', '65536', '', 'abc', '22a', '-22', '1e3', null, undefined, {}, [22], NaN]) {
    assert.equal(parsePort(bad), null, String(bad));
  }
});

test('port probe: a listening TCP port is busy, a closed one is free', async () => {
  const port = await freePort();
  assert.ok(port >= 1 && port <= 65535);
  assert.equal(await isHostPortFree(port, '127.0.0.1', 'tcp'), true);
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  try {
    assert.equal(await isHostPortFree(port, '127.0.0.1', 'tcp'), false);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
  assert.equal(await isHostPortFree(port, '127.0.0.1', 'tcp'), true);
});

test('port probe: a bound UDP port is busy', async () => {
  const dgram = await import('node:dgram');
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const port = sock.address().port;
  try {
    assert.equal(await isHostPortFree(port, '127.0.0.1', 'udp'), false);
  } finally {
    await new Promise<void>((r) => sock.close(() => r()));
  }
  assert.equal(await isHostPortFree(port, '127.0.0.1', 'udp'), true);
  assert.equal(await isHostPortFree(0, '127.0.0.1', 'tcp'), false);
});
