// A stock Debian 12 cloud image (scripts/build-cloud-image.sh: cloud-init, qemu-guest-agent, openssh-server) through
// `dbc up`, as a renter uses it: `running` only once SSH logs in with the returned credentials, the data disk
// formatted once and mounted at /data, sudo without a hostname warning, passwd through the real agent, power
// actions, a hot-added disk under its API name, delete; with SeaBIOS and with OVMF.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { ensureCloudImage, freeTcpPort, post, signedBody, sshExec, startDevnet, waitFor, type Devnet } from '../helpers/devnet.js';
import { freeVncPort, taskDetail, waitOperation } from '../helpers/tasks.js';

const BOOT_MS = 420_000; // ~71 s under TCG on a quiet machine; CI machines are busier

describe('a real cloud image (Debian 12, cloud-init) through dbc up', { timeout: 1_800_000 }, () => {
  let d: Devnet;
  let image: string;
  const signed = (additional: Record<string, unknown> = {}) => signedBody(d.node_id, d.renter.seed, additional);

  async function create(extra: Record<string, unknown> = {}): Promise<{ taskId: string; ssh: number; operationId: string }> {
    const ssh = await freeTcpPort();
    const r = await post(
      d.api,
      'tasks/start',
      signed({ image_name: image, ssh_port: String(ssh), vnc_port: String(await freeVncPort()), cpu_cores: '1', mem_size: '1', disk_size: '2', ...extra }),
    );
    assert.equal(r.body.errcode, 0, r.text);
    return { taskId: r.body.message.task_id as string, ssh, operationId: r.body.operation_id as string };
  }

  /** poll until `running`; then log in at once, no retry: the status promised a reachable guest */
  async function runningThenSsh(taskId: string, ssh: number, cmd: string): Promise<{ detail: any; out: string; seen: Set<string> }> {
    const seen = new Set<string>();
    const detail = await waitFor(
      'running',
      async () => {
        const t = await taskDetail(d, taskId);
        seen.add(t.status);
        return t.status === 'running' ? t : undefined;
      },
      BOOT_MS,
      250,
    );
    const runningAt = Date.now();
    try {
      const out = await sshExec('127.0.0.1', ssh, detail.user_name, detail.login_password, cmd, 30_000);
      return { detail, out, seen };
    } catch (err) {
      throw new Error(`ssh at running failed after ${Date.now() - runningAt} ms: ${(err as Error).message}\nserial log tail:\n${serialTail(taskId)}`);
    }
  }

  const serialTail = (taskId: string) => {
    try {
      return readFileSync(join(d.dataDir, 'vms', taskId, 'serial.log'), 'utf8')
        .replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g'), '')
        .slice(-4000);
    } catch {
      return '(no serial log)';
    }
  };

  before(async () => {
    const file = ensureCloudImage();
    image = basename(file);
    d = await startDevnet({ image: file, shutdownTimeoutS: 90 });
  });
  after(async () => {
    await d?.destroy();
  });

  test('legacy BIOS: running means SSH works; /data; sudo; passwd by the agent; shutdown, start, restart; disk/add; delete', async () => {
    const vm = await create();
    const first = await runningThenSsh(
      vm.taskId,
      vm.ssh,
      'id -un; findmnt -n -o FSTYPE,LABEL /data; sudo -n true 2>&1 && echo sudo-ok; ls /dev/disk/by-id/; echo kept | sudo -n tee /data/kept >/dev/null; cat /proc/sys/kernel/random/boot_id',
    );
    assert.ok(first.seen.has('creating'), [...first.seen].join(','));
    assert.equal(first.detail.guest_ready, true);
    assert.match(first.detail.guest_ready_time, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    const lines = first.out.trim().split('\n');
    assert.equal(lines[0], first.detail.user_name);
    assert.match(lines[1]!, /^ext4\s+dbc-data$/, first.out); // formatted by cloud-init fs_setup, mounted at /data
    assert.equal(lines[2], 'sudo-ok', first.out); // no "unable to resolve host" (manage_etc_hosts), in sudo
    assert.ok(first.out.includes('virtio-vda') && first.out.includes('virtio-vdb'), first.out);
    const boot1 = lines.at(-1)!;

    // passwd through the real qemu-guest-agent: the new password logs in, the old one no more
    const pw = await post(d.api, `tasks/passwd/${vm.taskId}`, signed({ username: 'dbc', password: 'Cloud-pass_42' }));
    assert.equal(pw.body.errcode, 0, pw.text);
    assert.equal((await sshExec('127.0.0.1', vm.ssh, 'dbc', 'Cloud-pass_42', 'echo new-password')).trim(), 'new-password');
    await assert.rejects(sshExec('127.0.0.1', vm.ssh, 'dbc', first.detail.login_password, 'true', 15_000));

    // shutdown by ACPI (the guest is up: systemd powers off), then start: /data is the same file system, not reformatted
    const t0 = Date.now();
    const sd = await post(d.api, `tasks/shutdown/${vm.taskId}`, signed());
    assert.equal(sd.body.errcode, 0, sd.text);
    const sdOp = await waitOperation(d, sd.body.operation_id as string, 120_000);
    assert.equal(sdOp.status, 'done', JSON.stringify(sdOp));
    assert.doesNotMatch(String(sdOp.stage), /forcing|not up yet/, 'an up guest keeps the ACPI path');
    assert.equal((await taskDetail(d, vm.taskId)).status, 'closed');
    const shutdownMs = Date.now() - t0;
    const st = await post(d.api, `tasks/start/${vm.taskId}`, signed());
    assert.equal(st.body.errcode, 0, st.text);
    const again = await runningThenSsh(vm.taskId, vm.ssh, 'cat /data/kept; cat /proc/sys/kernel/random/boot_id');
    const [kept, boot2] = again.out.trim().split('\n');
    assert.equal(kept, 'kept', again.out);
    assert.notEqual(boot2, boot1);

    // restart: a new boot, reachable when running says so
    const rs = await post(d.api, `tasks/restart/${vm.taskId}`, signed());
    assert.equal(rs.body.errcode, 0, rs.text);
    await waitFor('the restart leaves running', async () => (await taskDetail(d, vm.taskId)).status !== 'running', 120_000, 250);
    const third = await runningThenSsh(vm.taskId, vm.ssh, 'cat /proc/sys/kernel/random/boot_id; cat /data/kept');
    const [boot3, kept3] = third.out.trim().split('\n');
    assert.notEqual(boot3, boot2);
    assert.equal(kept3, 'kept');

    // a hot-added disk shows under its API name
    const add = await post(d.api, `disk/add/${vm.taskId}`, signed({ size: 1 }));
    assert.equal(add.body.errcode, 0, add.text);
    assert.equal((await waitOperation(d, add.body.operation_id as string, 120_000)).status, 'done');
    const byId = await waitFor(
      'virtio-vdc in the guest',
      async () => {
        const o = await sshExec('127.0.0.1', vm.ssh, 'dbc', 'Cloud-pass_42', 'ls /dev/disk/by-id/');
        return o.includes('virtio-vdc') ? o : undefined;
      },
      60_000,
      1000,
    );
    assert.match(byId, /virtio-vdc/);

    const del = await post(d.api, `tasks/delete/${vm.taskId}`, signed());
    assert.equal(del.body.errcode, 0, del.text);
    await waitFor('deleted', async () => (await post(d.api, `tasks/${vm.taskId}`, signed())).body.errcode !== 0, 120_000, 500);
    console.log(`# real-guest legacy: ACPI shutdown ${shutdownMs} ms`);
  });

  test('UEFI: OVMF boots the same image; running means SSH works; /data mounted', async () => {
    const vm = await create({ bios_mode: 'uefi' });
    const r = await runningThenSsh(vm.taskId, vm.ssh, 'test -d /sys/firmware/efi && echo efi; findmnt -n -o FSTYPE,LABEL /data');
    assert.equal(r.detail.bios_mode, 'uefi');
    assert.equal(r.detail.guest_ready, true);
    const [efi, data] = r.out.trim().split('\n');
    assert.equal(efi, 'efi', r.out);
    assert.match(data!, /^ext4\s+dbc-data$/, r.out);
    const del = await post(d.api, `tasks/delete/${vm.taskId}`, signed());
    assert.equal(del.body.errcode, 0, del.text);
    await waitFor('deleted', async () => (await post(d.api, `tasks/${vm.taskId}`, signed())).body.errcode !== 0, 120_000, 500);
  });
});
