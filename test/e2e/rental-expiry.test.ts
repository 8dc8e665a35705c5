// When a rental ends its VMs stop, its sessions end, and after the grace period the VMs are deleted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { cliPath, freeTcpPort, post, qemuPidsUnder, sessionBody, signedBody, startDevnet, waitFor, type Devnet } from '../helpers/devnet.js';
import { freeVncPort, waitStatus } from '../helpers/tasks.js';

describe('rental expiry', { timeout: 400_000 }, () => {
  let d: Devnet;
  before(async () => {
    d = await startDevnet({ sweepS: 1, deleteGraceS: 8 });
  });
  after(async () => {
    await d?.destroy();
  });

  test('an ended rental stops the VM, ends the session, then deletes the VM after the grace period', async () => {
    const r = await post(
      d.api,
      'tasks/start',
      signedBody(d.node_id, d.renter.seed, {
        image_name: d.image,
        ssh_port: String(await freeTcpPort()),
        vnc_port: String(await freeVncPort()),
        cpu_cores: '1',
        mem_size: '1',
        disk_size: '1',
      }),
    );
    assert.equal(r.body.errcode, 0, r.text);
    const taskId = r.body.message.task_id as string;
    await waitStatus(d, taskId, 'running', 120_000);
    const sid = (await post(d.api, 'mining_nodes/session_id', signedBody(d.node_id, d.renter.seed))).body.message.session_id;

    execFileSync(process.execPath, [cliPath, 'rental', 'revoke', '--data-dir', d.dataDir, '--wallet', d.renter.wallet]);
    await waitFor('VM stopped', () => qemuPidsUnder(join(d.dataDir, 'vms', taskId)).length === 0, 30_000);
    const viaSession = await post(d.api, 'tasks', sessionBody(d.node_id, sid, d.renter.seed));
    assert.notEqual(viaSession.body.errcode, 0, 'the session ended with the rental');
    assert.ok(existsSync(join(d.dataDir, 'vms', taskId)), 'kept during the grace period');

    await waitFor('VM deleted after the grace period', () => !existsSync(join(d.dataDir, 'vms', taskId)), 60_000);
    // renting again gives access back, and the deleted VM is gone for good
    execFileSync(process.execPath, [cliPath, 'rental', 'grant', '--data-dir', d.dataDir, '--wallet', d.renter.wallet, '--days', '1']);
    const list = await post(d.api, 'tasks', signedBody(d.node_id, d.renter.seed));
    assert.deepEqual(list.body, { errcode: 0, message: [] });
  });
});
