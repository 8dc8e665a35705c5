// Throughput of a forwarded guest TCP port: bridge mode (kernel DNAT by nftables, VM on a tap) against user mode
// (QEMU's user-space hostfwd), same guest image and VM shape, same run, rounds alternating.
// Bridge mode runs `dbc up --network bridge` inside a network namespace the bench creates, reached from the root
// namespace over a veth (so packets take the real prerouting-DNAT-forward path); user mode is a plain `dbc up`.
// Each round: the guest's busybox `nc -l -p 5001 > /dev/null` is (re)started over SSH, the bench connects to the
// forwarded port, writes BYTES, half-closes and times until the guest's nc closes the connection. Prints JSON.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { freeTcpPort, post, qemuPidsUnder, signedBody, sleep, sshExec, startDevnet, waitFor, type Devnet } from '../test/helpers/devnet.js';
import { freeVncPort, waitStatus } from '../test/helpers/tasks.js';
import { median, rounder } from './stats.js';
import { checkGuestReceived, sendToGuest } from './guest-sink.js';

const BYTES = Number(process.env.BENCH_FWD_MIB ?? 64) * 1024 * 1024;
const ROUNDS = Number(process.env.BENCH_FWD_ROUNDS ?? 3);
const R = randomBytes(2).toString('hex');
const NS = `dbfw${R}`;
const VETH = `dbfv${R}`;
const HOST_IP = '10.78.0.2';

const sh = (args: string[]) => execFileSync(args[0]!, args.slice(1), { encoding: 'utf8', timeout: 30_000 });
const round = rounder(1);

function setup(): void {
  sh(['ip', 'netns', 'add', NS]);
  sh(['ip', 'netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up']);
  sh(['ip', 'link', 'add', VETH, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NS]);
  sh(['ip', 'addr', 'add', '10.78.0.1/24', 'dev', VETH]);
  sh(['ip', 'link', 'set', VETH, 'up']);
  sh(['ip', 'netns', 'exec', NS, 'ip', 'addr', 'add', `${HOST_IP}/24`, 'dev', 'eth0']);
  sh(['ip', 'netns', 'exec', NS, 'ip', 'link', 'set', 'eth0', 'up']);
  sh(['ip', 'netns', 'exec', NS, 'ip', 'route', 'add', 'default', 'via', '10.78.0.1']);
}

function teardown(): void {
  try {
    for (const pid of sh(['ip', 'netns', 'pids', NS]).split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
  } catch {
    // none
  }
  for (const args of [
    ['ip', 'link', 'del', VETH],
    ['ip', 'netns', 'del', NS],
  ]) {
    try {
      sh(args);
    } catch {
      // gone
    }
  }
}

interface Vm {
  /** the VM's QEMU process: user-mode forwarding (slirp) runs inside it, kernel DNAT does not */
  qemuPid: number;
  host: string;
  ssh: number;
  data: number;
  password: string;
}

async function bootVm(d: Devnet, host: string): Promise<Vm> {
  const ssh = await freeTcpPort();
  const data = await freeTcpPort();
  const r = await post(
    d.api,
    'tasks/start',
    signedBody(d.node_id, d.renter.seed, {
      image_name: d.image,
      ssh_port: String(ssh),
      vnc_port: String(await freeVncPort()),
      cpu_cores: '1',
      mem_size: '1',
      disk_size: '1',
      custom_port: [`tcp,${data}:5001`],
    }),
  );
  if (r.body.errcode !== 0) throw new Error(r.text);
  const detail = await waitStatus(d, r.body.message.task_id, 'running', 240_000);
  await waitFor('ssh', () => sshExec(host, ssh, 'dbc', detail.login_password, 'true', 10_000), 180_000, 2000);
  const pids = qemuPidsUnder(d.dataDir);
  if (pids.length !== 1) throw new Error(`expected one QEMU under ${d.dataDir}, found ${pids.length}`);
  return { qemuPid: pids[0]!, host, ssh, data, password: detail.login_password };
}

/** user + system CPU seconds of a process so far */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

/** one transfer: MiB/s from connect to the guest's close and QEMU CPU ms per MiB; the guest must have every byte */
async function transfer(vm: Vm): Promise<{ rate: number; cpuMsPerMib: number }> {
  const cpu0 = cpuSeconds(vm.qemuPid);
  const rate = await sendToGuest(vm, BYTES);
  const cpuMsPerMib = ((cpuSeconds(vm.qemuPid) - cpu0) * 1000) / (BYTES / 1024 / 1024);
  await checkGuestReceived(vm, BYTES);
  return { rate, cpuMsPerMib };
}

async function main(): Promise<void> {
  teardown();
  setup();
  let bridge: Devnet | undefined;
  let user: Devnet | undefined;
  try {
    [bridge, user] = await Promise.all([
      startDevnet({ netns: NS, extraArgs: ['--host', HOST_IP, '--network', 'bridge', '--lan-local', HOST_IP, '--no-local-image-server'] }),
      startDevnet({ extraArgs: ['--no-local-image-server'] }),
    ]);
    const [vb, vu] = await Promise.all([bootVm(bridge, HOST_IP), bootVm(user, '127.0.0.1')]);
    const b: Array<{ rate: number; cpuMsPerMib: number }> = [];
    const u: Array<{ rate: number; cpuMsPerMib: number }> = [];
    for (let i = 0; i < ROUNDS; i++) {
      b.push(await transfer(vb));
      u.push(await transfer(vu));
      await sleep(200);
    }
    const bm = median(b.map((x) => x.rate));
    const um = median(u.map((x) => x.rate));
    console.log(
      JSON.stringify(
        {
          bytes_per_round: BYTES,
          rounds: ROUNDS,
          bridge_nft_mib_s: b.map((x) => round(x.rate)),
          user_hostfwd_mib_s: u.map((x) => round(x.rate)),
          bridge_median_mib_s: round(bm),
          user_median_mib_s: round(um),
          ratio_bridge_vs_user: round(bm / um, 2),
          bridge_qemu_cpu_ms_per_mib: round(median(b.map((x) => x.cpuMsPerMib))),
          user_qemu_cpu_ms_per_mib: round(median(u.map((x) => x.cpuMsPerMib))),
          note: 'TCG guests here: the emulated guest CPU (busybox nc | wc) bounds both paths; the QEMU CPU per MiB shows the host-side cost, which includes slirp only in user mode',
        },
        null,
        2,
      ),
    );
  } finally {
    await Promise.allSettled([bridge?.destroy(), user?.destroy()]);
    teardown();
  }
}

main().catch((err) => {
  console.log(JSON.stringify({ error: (err as Error).message }));
  teardown();
  process.exit(1);
});
