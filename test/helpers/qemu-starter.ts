// Starts one VM with the real QemuHypervisor from a separate process, prints {"pid":N} and stays alive until killed.
// Used to prove that a VM outlives a SIGKILLed daemon and can be adopted by a new one.
// Usage: node qemu-starter.js '<json {spec, accel}>'
import { QemuHypervisor } from '../../src/vm/qemu.js';
import type { VmSpec } from '../../src/vm/types.js';

const { spec, accel } = JSON.parse(process.argv[2] ?? '{}') as { spec: VmSpec; accel?: 'kvm' | 'tcg' | 'auto' };
const hv = new QemuHypervisor({ accel: accel ?? 'tcg' });
try {
  const { pid } = await hv.start(spec);
  process.stdout.write(JSON.stringify({ pid }) + '\n');
} catch (err) {
  process.stdout.write(JSON.stringify({ error: err instanceof Error ? err.message : String(err) }) + '\n');
  process.exit(1);
}
setInterval(() => {}, 60_000);
