// Typed commands: what a handler makes of `additional` once it is validated at the edge (node/params.ts), and
// what the task services take. No `unknown` below this line.
import type { BiosMode, GuestOs, NicModel } from './vm-kinds.js';

/** tasks/start */
export interface CreateParams {
  /** a client-proposed task id (checked), else the node makes one */
  taskId?: string;
  imageName: string;
  desc: string;
  os: GuestOs;
  biosMode: BiosMode;
  sshPort: number;
  rdpPort: number;
  vncPort: number;
  gpuCount: number;
  cpuCores: number;
  memGb: number;
  diskGb: number;
  dataFileName?: string;
  /** custom_port entries in the original's syntax, already checked by net/ports.ts parseCustomPorts */
  customPorts: string[];
  multicast: string[];
  networkName: string;
  networkFilters: string[];
  publicIp: string;
  nicModel: NicModel;
}

/** tasks/modify: only what was given */
export interface ModifyParams {
  sshPort?: number;
  rdpPort?: number;
  vncPort?: number;
  customPorts?: string[];
  gpuCount?: number;
  cpuCores?: number;
  memGb?: number;
  networkFilters?: string[];
  publicIp?: string;
}

/** who creates a VM: the renter's account and what the rental allows */
export interface TaskOwner {
  account: string;
  rentOrder: string;
  rentedGpus: number;
}
