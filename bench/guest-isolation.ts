// The cost of the guest guard (issue 10, finding 3; net/guest-guard.ts) in user network mode, same run, same host:
// two `dbc up` nodes, one with `--guest-guard on` (QEMU -runas an unprivileged uid + the nftables output chain),
// one with `--guest-guard off` (today's user mode). Boots alternate between them (boot-to-SSH: tasks/start until an
// SSH command through the forwarded port succeeds), then forwarded TCP throughput rounds alternate: the guest's
// busybox `nc -l -p 5001 | wc -c` is (re)started over SSH, the bench writes BYTES to the hostfwd'ed port, half-closes
// and times until the guest closes. Prints JSON. Needs root (the guard) or reports an error.
import { freeTcpPort, post, signedBody, sleep, sshExec, startDevnet, waitFor, type Devnet } from '../test/helpers/devnet.js';
import { freeVncPort, waitStatus } from '../test/helpers/tasks.js';
import { median, rounder } from './stats.js';
import { checkGuestReceived, sendToGuest } from './guest-sink.js';

const BYTES = Number(process.env.BENCH_FWD_MIB ?? 64) * 1024 * 1024;
const ROUNDS = Number(process.env.BENCH_FWD_ROUNDS ?? 3);
const BOOTS = Number(process.env.BENCH_BOOTS ?? 2);
const round = rounder(1);

interface Vm {
  id: string;
  ssh: number;
  data: number;
  password: string;
}

async function bootVm(d: Devnet): Promise<{ vm: Vm; seconds: number }> {
  const ssh = await freeTcpPort();
  const data = await freeTcpPort();
  const t0 = Date.now();
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
  await waitFor('ssh', () => sshExec('127.0.0.1', ssh, 'dbc', detail.login_password, 'true', 10_000).catch(() => undefined), 240_000, 500);
  return { vm: { id: r.body.message.task_id, ssh, data, password: detail.login_password }, seconds: (Date.now() - t0) / 1000 };
}

async function send(vm: Vm): Promise<number> {
  const sink = { host: '127.0.0.1', ssh: vm.ssh, data: vm.data, password: vm.password };
  const rate = await sendToGuest(sink, BYTES);
  await checkGuestReceived(sink, BYTES);
  return rate;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the guest guard needs root');
  let on: Devnet | undefined;
  let off: Devnet | undefined;
  try {
    off = await startDevnet({ extraArgs: ['--no-local-image-server', '--guest-guard', 'off'] });
    on = await startDevnet({ extraArgs: ['--no-local-image-server', '--guest-guard', 'on'] });
    const boots: Record<'on' | 'off', number[]> = { on: [], off: [] };
    const keep: Partial<Record<'on' | 'off', Vm>> = {};
    for (let i = 0; i < BOOTS; i++) {
      for (const [key, d] of [
        ['off', off],
        ['on', on],
      ] as const) {
        const { vm, seconds } = await bootVm(d);
        boots[key].push(seconds);
        if (!keep[key]) keep[key] = vm;
        else await post(d.api, `tasks/stop/${vm.id}`, signedBody(d.node_id, d.renter.seed));
      }
    }
    const rates: Record<'on' | 'off', number[]> = { on: [], off: [] };
    for (let i = 0; i < ROUNDS; i++) {
      rates.off.push(await send(keep.off!));
      rates.on.push(await send(keep.on!));
      await sleep(200);
    }
    console.log(
      JSON.stringify(
        {
          boots_per_mode: BOOTS,
          boot_to_ssh_s_off: boots.off.map((x) => round(x)),
          boot_to_ssh_s_on: boots.on.map((x) => round(x)),
          boot_to_ssh_median_s_off: round(median(boots.off)),
          boot_to_ssh_median_s_on: round(median(boots.on)),
          bytes_per_round: BYTES,
          rounds: ROUNDS,
          hostfwd_mib_s_off: rates.off.map((x) => round(x)),
          hostfwd_mib_s_on: rates.on.map((x) => round(x)),
          hostfwd_median_mib_s_off: round(median(rates.off)),
          hostfwd_median_mib_s_on: round(median(rates.on)),
          ratio_on_vs_off: round(median(rates.on) / median(rates.off), 2),
          note: 'TCG guests; the guard adds one output-hook rule set evaluated for new connections of the VM uid only; forwarded traffic is established',
        },
        null,
        2,
      ),
    );
  } finally {
    await Promise.allSettled([on?.destroy(), off?.destroy()]);
  }
}

main().catch((err) => {
  console.log(JSON.stringify({ error: (err as Error).message }));
  process.exit(1);
});
