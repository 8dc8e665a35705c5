// The gateway builder shared by `dbc up` and `dbc client` (api/gateway.ts) and its flags (cli/http-flags.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { startGateway, startImageCentres } from '../../src/api/gateway.js';
import { addGatewayOptions, gatewayFromFlags, type GatewayFlags } from '../../src/cli/http-flags.js';
import type { NodeTransport } from '../../src/protocol/types.js';

function parse(localDefault: boolean, argv: string[]): ReturnType<typeof gatewayFromFlags> {
  const cmd = addGatewayOptions(new Command('x').exitOverride(), { localImageServer: localDefault });
  cmd.parse(argv, { from: 'user' });
  return gatewayFromFlags(cmd.opts<GatewayFlags>());
}

test('the gateway flags: the local centre is on by default for dbc up, off for dbc client', () => {
  assert.equal(parse(true, []).localImageServer, true);
  assert.equal(parse(true, ['--no-local-image-server']).localImageServer, false);
  assert.equal(parse(false, []).localImageServer, false);
  assert.equal(parse(false, ['--local-image-server']).localImageServer, true);
  const f = parse(false, [
    '--image-server',
    'A,h1,873,m',
    '--image-server',
    'B,h2,874,m',
    '--local-image-server-host',
    '10.0.0.5',
    '--http-headers-timeout',
    '2',
  ]);
  assert.deepEqual(f.imageServers, ['A,h1,873,m', 'B,h2,874,m']);
  assert.equal(f.advertise, '10.0.0.5');
  assert.equal(f.http.headersTimeoutMs, 2000);
});

test('startImageCentres refuses a bad flag before starting anything', async () => {
  await assert.rejects(startImageCentres({ imageServers: ['nope'], dataDir: '/nonexistent', host: '127.0.0.1', localImageServer: true }));
  await assert.rejects(startImageCentres({ imageServerSecrets: ['nope'], dataDir: '/nonexistent', host: '127.0.0.1' }), /--image-server-secret/);
});

test('startGateway: the configured centres answer images/servers, an unknown id is refused before the transport', async () => {
  const dir = mkdtempSync(join(os.tmpdir(), 'dbc-gateway-'));
  const asked: string[] = [];
  const transport: NodeTransport = {
    knownNodes: () => [],
    request: (nodeId) => {
      asked.push(nodeId);
      return Promise.resolve({ errcode: 0, message: 'ok' });
    },
  };
  const centres = await startImageCentres({ imageServers: ['ID_A,127.0.0.1,873,images'], dataDir: dir, host: '127.0.0.1' });
  const gw = await startGateway({ transport, host: '127.0.0.1', httpPort: 0, centres, localImageDir: join(dir, 'images') });
  try {
    const servers = await (await fetch(`${gw.url}/api/v1/images/servers`, { method: 'POST' })).json();
    assert.deepEqual(servers, { errcode: 0, message: { image_server: ['ID_A'] } });
    const node = 'ab'.repeat(32);
    const body = JSON.stringify({
      peer_nodes_list: [node],
      additional: { image_server: 'ID_B', image_filename: 'x.qcow2' },
      wallet: 'w',
      nonce: 'n',
      sign: 's',
    });
    const r = (await (await fetch(`${gw.url}/api/v1/images/download`, { method: 'POST', body })).json()) as { message: string };
    assert.equal(r.message, 'image_server not exist');
    assert.deepEqual(asked, []);
  } finally {
    await gw.close();
    await centres.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
