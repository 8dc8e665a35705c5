// MAC addresses of a VM's NICs: locally administered QEMU MACs (52:54:00 OUI), derived from the task id and the NIC
// id so they stay the same across restarts and the node can hand out static DHCP leases before the VM boots.
import { createHash } from 'node:crypto';

const ID = /^[A-Za-z0-9_]{1,64}$/;

export function nicMac(taskId: string, nic = 'net0'): string {
  if (!ID.test(taskId)) throw new Error(`invalid task id: ${JSON.stringify(taskId)}`);
  if (!ID.test(nic)) throw new Error(`invalid nic id: ${JSON.stringify(nic)}`);
  // net0 keeps the derivation older VMs got their MAC from (sha256 of the task id)
  const h = createHash('sha256')
    .update(nic === 'net0' ? taskId : `${taskId}/${nic}`)
    .digest();
  return ['52', '54', '00', ...[h[0]!, h[1]!, h[2]!].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

/** short stable suffix for per-VM interface names (tap names are limited to 15 bytes) */
export function ifSuffix(taskId: string): string {
  if (!ID.test(taskId)) throw new Error(`invalid task id: ${JSON.stringify(taskId)}`);
  return createHash('sha256').update(`if/${taskId}`).digest('hex').slice(0, 10);
}
