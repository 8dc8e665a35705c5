// Private LANs and multicast groups in `dbc up`'s user network mode: two VMs created with the same network_name
// get addresses on the LAN from the node (static DHCP over the QEMU multicast segment) and ping each other; the LAN
// cannot be deleted while they exist; a second LAN with the same subnet is its own segment; bad names, unknown LANs,
// bad CIDRs, multicast groups and filters get the original's texts in the envelope.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { freeTcpPort, post, signedBody, sshExec, startDevnet, waitFor, type Devnet } from '../helpers/devnet.js';
import { freeVncPort, taskDetail, waitStatus } from '../helpers/tasks.js';

describe('user mode: LANs between the VMs of one host', { timeout: 600_000 }, () => {
  let d: Devnet;
  const body = (additional: Record<string, unknown> = {}) => signedBody(d.node_id, d.renter.seed, additional);
  const vms: Array<{ id: string; ssh: number; password: string }> = [];

  async function createVm(extra: Record<string, unknown>): Promise<{ errcode: number; message: any; text: string; ssh: number }> {
    const ssh = await freeTcpPort();
    const r = await post(
      d.api,
      'tasks/start',
      body({
        image_name: d.image,
        ssh_port: String(ssh),
        vnc_port: String(await freeVncPort()),
        cpu_cores: '1',
        mem_size: '1',
        disk_size: '1',
        ...extra,
      }),
    );
    return { errcode: r.body.errcode, message: r.body.message, text: r.text, ssh };
  }

  before(async () => {
    // LANs without VMs go after 20 s unused (checked by the reconciler every 15 s)
    d = await startDevnet({ shutdownTimeoutS: 20, extraArgs: ['--lan-idle', '20'] });
  });
  after(async () => {
    await d?.destroy().catch(() => undefined);
  });

  test('lan/create validates names and CIDRs with the original texts', async () => {
    const create = async (additional: Record<string, unknown>) => (await post(d.api, 'lan/create', body(additional))).body;
    assert.deepEqual(await create({ network_name: '', ip_cidr: '192.168.66.0/24' }), { errcode: -3, message: 'network name can not be empty' });
    for (const bad of ['abc', 'abcdefghijk', 'bad-name1', 'bad name1', '../etc1', 'ünïcode1']) {
      assert.deepEqual(
        await create({ network_name: bad, ip_cidr: '192.168.66.0/24' }),
        {
          errcode: -3,
          message: 'network name requires a combination of 6 to 10 letters or numbers',
        },
        bad,
      );
    }
    assert.deepEqual(await create({ network_name: 'testnet1' }), { errcode: -3, message: 'ip cidr can not be empty' });
    for (const bad of ['192.168.66.0', '192.168.66.0/33', '300.1.1.0/24', '192.168.122.0/24', '10.0.0.0/8', '224.1.0.0/24', '192.168.66.0/24; rm -rf /']) {
      const r = await create({ network_name: 'testnet1', ip_cidr: bad });
      assert.equal(r.errcode, -3, bad);
      assert.match(r.message, /^invalid ip cidr/, bad);
    }
    const ok = await create({ network_name: 'testnet1', ip_cidr: '192.168.66.0/24' });
    assert.equal(ok.errcode, 0, JSON.stringify(ok));
    assert.equal(ok.message.network_name, 'testnet1');
    assert.equal(ok.message.ip_cidr, '192.168.66.0/24');
    assert.deepEqual(await create({ network_name: 'testnet1', ip_cidr: '192.168.67.0/24' }), { errcode: -3, message: 'network name already existed' });
    // the same renter's second LAN with the same or an overlapping subnet is created, as in the original (the rental
    // website creates every LAN with 192.168.66.0/24): a separate segment
    for (const [name, cidr] of [
      ['testnet2', '192.168.66.0/24'],
      ['testnet3', '192.168.66.128/25'],
    ] as const) {
      const again = await create({ network_name: name, ip_cidr: cidr });
      assert.equal(again.errcode, 0, JSON.stringify(again));
      assert.equal(again.message.ip_cidr, cidr);
      assert.notEqual(again.message.vxlan_vni, ok.message.vxlan_vni, 'its own segment');
      assert.notEqual(again.message.segment, ok.message.segment, 'its own segment');
      assert.deepEqual((await post(d.api, 'lan/delete/' + name, body())).body, { errcode: 0, message: 'ok' });
    }
  });

  test('tasks/start: unknown LAN, bad multicast groups and filters are refused before anything is made', async () => {
    const before = (await post(d.api, 'tasks', body())).body.message.length;
    assert.deepEqual((await createVm({ network_name: 'nosuch12' })).text, JSON.stringify({ errcode: -3, message: 'can not find network info' }));
    assert.equal((await createVm({ network_name: 'x;reboot' })).message, 'can not find network info');
    assert.equal((await createVm({ multicast: ['239.1.2.3'] })).message, 'multicast format: ip:port');
    assert.equal((await createVm({ multicast: ['10.1.2.3:5000'] })).message, 'address is not a multicast address');
    assert.equal((await createVm({ multicast: ['239.1.2.3:70000'] })).message, 'invalid multicast port');
    assert.match((await createVm({ multicast: ['239.254.0.1:20000'] })).message, /reserved by the node/);
    assert.match((await createVm({ network_filters: ['in,tcp,22,0.0.0.0/0'] })).message, /^invalid network filter/);
    assert.match((await createVm({ network_filters: ['sideways,tcp,22,0.0.0.0/0,drop'] })).message, /^invalid network filter/);
    assert.equal((await post(d.api, 'tasks', body())).body.message.length, before);
  });

  test('two VMs on the same network_name ping each other on the LAN subnet', async () => {
    for (let i = 0; i < 2; i++) {
      const r = await createVm({ network_name: 'testnet1', multicast: ['239.10.20.30:5000'] });
      assert.equal(r.errcode, 0, r.text);
      vms.push({ id: r.message.task_id, ssh: r.ssh, password: '' });
    }
    const lanIps: string[] = [];
    for (const vm of vms) {
      const detail = await waitStatus(d, vm.id, 'running', 240_000);
      vm.password = detail.login_password;
      assert.equal(detail.network_name, 'testnet1');
      assert.ok(Array.isArray(detail.local_address) && detail.local_address.length === 1, JSON.stringify(detail));
      assert.match(detail.local_address[0], /^192\.168\.66\.\d+$/);
      assert.ok(detail.interface.some((n: any) => n.name === 'lan0' && n.network_name === 'testnet1'));
      assert.ok(detail.interface.some((n: any) => n.name === 'mc0' && n.multicast === '239.10.20.30:5000'));
      lanIps.push(detail.local_address[0]);
    }
    assert.notEqual(lanIps[0], lanIps[1]);
    // each guest took its LAN address by DHCP from the node (the guest prints its leases on the console)
    for (const [i, vm] of vms.entries()) {
      await waitFor(
        `guest ${i} LAN lease`,
        async () => {
          const out = await sshExec('127.0.0.1', vm.ssh, 'dbc', vm.password, 'ip -4 -o addr show', 10_000).catch(() => '');
          return out.includes(`inet ${lanIps[i]}/24`) ? out : undefined;
        },
        120_000,
        2000,
      );
    }
    const ping = await sshExec('127.0.0.1', vms[0]!.ssh, 'dbc', vms[0]!.password, `/bin/ping -c 3 -W 3 ${lanIps[1]} && echo PING_OK`, 30_000);
    assert.match(ping, /PING_OK/, ping);
    assert.match(ping, /3 packets transmitted, 3 packets received|3 packets received/, ping);
    const banner = await sshExec('127.0.0.1', vms[1]!.ssh, 'dbc', vms[1]!.password, `echo | nc -w 3 ${lanIps[0]} 22 | head -c 7`, 30_000);
    assert.equal(banner.trim(), 'SSH-2.0');
  });

  test('the LAN lists its members and cannot be deleted while they exist; then it can', async () => {
    const one = await post(d.api, 'lan/testnet1', body());
    assert.equal(one.body.errcode, 0, one.text);
    assert.deepEqual([...one.body.message.members].sort(), vms.map((v) => v.id).sort());
    const list = await post(d.api, 'lan', body());
    assert.ok(Array.isArray(list.body.message), list.text);
    assert.deepEqual(
      list.body.message.map((n: any) => n.network_name),
      ['testnet1'],
    );
    assert.deepEqual((await post(d.api, 'lan/delete/testnet1', body())).body, {
      errcode: -3,
      message: 'network is in used, please delete task in the network first',
    });
    assert.deepEqual((await post(d.api, 'lan/delete/nosuch12', body())).body, { errcode: -3, message: 'network name not exist' });
    // client-local forms (empty peer list): the client host holds no LANs of its own
    assert.deepEqual((await post(d.api, 'lan', { peer_nodes_list: [], additional: {} })).body, { errcode: 0, message: { networks: [] } });

    for (const vm of vms) assert.equal((await post(d.api, `tasks/delete/${vm.id}`, body())).body.errcode, 0);
    await waitFor('VMs deleted', async () => ((await post(d.api, 'tasks', body())).body.message.length === 0 ? true : undefined), 120_000, 500);
    assert.deepEqual((await post(d.api, 'lan/delete/testnet1', body())).body, { errcode: 0, message: 'ok' });
    assert.deepEqual((await post(d.api, 'lan/testnet1', body())).body, { errcode: -3, message: 'network name not exist' });
    const detail = await post(d.api, `tasks/${vms[0]!.id}`, body());
    assert.equal(detail.body.message, 'task_id not exist');
    void taskDetail;
  });

  test('a LAN nobody uses is removed after --lan-idle', async () => {
    const r = await post(d.api, 'lan/create', body({ network_name: 'idlenet1', ip_cidr: '192.168.91.0/24' }));
    assert.equal(r.body.errcode, 0, r.text);
    const t0 = Date.now();
    await waitFor('idle LAN removed', async () => ((await post(d.api, 'lan/idlenet1', body())).body.errcode !== 0 ? true : undefined), 90_000, 1000);
    assert.ok(Date.now() - t0 >= 15_000, 'not before the idle time');
    assert.deepEqual((await post(d.api, 'lan/idlenet1', body())).body, { errcode: -3, message: 'network name not exist' });
  });
});
