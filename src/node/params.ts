// Turns the `additional` object of tasks/start and tasks/modify into typed values, with the original's texts.
// Values arrive as JSON strings ("cpu_cores":"4"); numbers are accepted too; "undefined" and "" mean absent.
import { NodeErrors } from '../errors/index.js';
import { parseCustomPorts } from '../net/ports.js';
import type { CreateParams, ModifyParams } from '../domain/commands.js';
import { IMAGE_NAME_RE, TASK_ID_RE } from '../domain/ids.js';
import type { GuestOs } from '../domain/vm-kinds.js';

export type { CreateParams, ModifyParams } from '../domain/commands.js';

export function optString(additional: Record<string, unknown>, key: string): string | undefined {
  const v = additional[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v !== 'string') throw NodeErrors.paramInvalid(key);
  const s = v.trim();
  if (s === '' || s === 'undefined' || s === 'null') return undefined;
  return s;
}

function optList(additional: Record<string, unknown>, key: string): string[] {
  const v = additional[key];
  if (v === undefined || v === null || v === '' || v === 'undefined') return [];
  let list: unknown = v;
  if (typeof v === 'string') {
    try {
      list = JSON.parse(v);
    } catch {
      list = [v];
    }
  }
  if (!Array.isArray(list) || list.some((x) => typeof x !== 'string')) throw NodeErrors.paramInvalid(key);
  return (list as string[]).map((s) => s.trim()).filter((s) => s !== '');
}

const DIGITS = /^\d{1,10}$/;

/** the original's port texts: `<key> is empty`, `<key> is not digit` */
function requiredPort(additional: Record<string, unknown>, key: string): number {
  const s = optString(additional, key);
  if (s === undefined) throw NodeErrors.paramEmpty(key);
  if (!DIGITS.test(s)) throw NodeErrors.paramNotDigit(key);
  const n = Number(s);
  if (key === 'vnc_port' || key === 'new_vnc_port') {
    if (n < 5900 || n > 65535) throw NodeErrors.vncPortRange();
  } else if (n < 1 || n > 65535) {
    throw NodeErrors.portParamInvalid(key);
  }
  return n;
}

function optPort(additional: Record<string, unknown>, key: string): number | undefined {
  return optString(additional, key) === undefined ? undefined : requiredPort(additional, key);
}

function positiveInt(additional: Record<string, unknown>, key: string, err: () => Error): number {
  const s = optString(additional, key);
  if (s === undefined || !DIGITS.test(s)) throw err();
  const n = Number(s);
  if (n <= 0) throw err();
  return n;
}

export function parseCreateParams(additional: Record<string, unknown>): CreateParams {
  const taskId = optString(additional, 'task_id');
  if (taskId !== undefined) {
    if (taskId.length < 20 || taskId.length > 22) throw NodeErrors.taskIdLength();
    if (!TASK_ID_RE.test(taskId)) throw NodeErrors.taskIdChars();
  }

  const osRaw = (optString(additional, 'operation_system') ?? 'linux').toLowerCase();
  let os: GuestOs;
  if (osRaw.includes('linux') || osRaw.includes('ubuntu')) os = 'linux';
  else if (osRaw.includes('windows') || osRaw.includes('win')) os = 'windows';
  else throw NodeErrors.unsupportedOs(osRaw);

  const biosRaw = (optString(additional, 'bios_mode') ?? 'legacy').toLowerCase();
  if (biosRaw !== 'legacy' && biosRaw !== 'uefi' && biosRaw !== 'pxe') throw NodeErrors.unsupportedBios(biosRaw);
  const biosMode = biosRaw;

  const imageName = optString(additional, 'image_name');
  if (imageName === undefined) throw NodeErrors.imageNameEmpty();
  if (!imageName.endsWith('.qcow2')) throw NodeErrors.imageExtension();
  if (!IMAGE_NAME_RE.test(imageName)) throw NodeErrors.imageNotExist(`/data/${imageName.slice(0, 128)}`);

  const sshPort = os === 'linux' ? requiredPort(additional, 'ssh_port') : (optPort(additional, 'ssh_port') ?? 0);
  const rdpPort = os === 'windows' ? requiredPort(additional, 'rdp_port') : (optPort(additional, 'rdp_port') ?? 0);
  const vncPort = requiredPort(additional, 'vnc_port');
  if (sshPort && rdpPort && sshPort === rdpPort) throw NodeErrors.samePorts();
  if ((sshPort && sshPort === vncPort) || (rdpPort && rdpPort === vncPort)) throw NodeErrors.portConflict('vnc_port', vncPort);

  const gpuRaw = optString(additional, 'gpu_count') ?? '0';
  if (!DIGITS.test(gpuRaw)) throw NodeErrors.gpuCountInvalid();
  const gpuCount = Number(gpuRaw);

  const cpuCores = positiveInt(additional, 'cpu_cores', NodeErrors.cpuInvalid);
  const memGb = positiveInt(additional, 'mem_size', NodeErrors.memInvalid);
  const diskGb = biosMode === 'pxe' ? 0 : positiveInt(additional, 'disk_size', NodeErrors.diskInvalid);

  const dataFileName = optString(additional, 'data_file_name');
  if (dataFileName !== undefined && !IMAGE_NAME_RE.test(dataFileName)) throw NodeErrors.dataFileNotExist(`/data/${dataFileName.slice(0, 128)}`);

  const customPorts = optList(additional, 'custom_port');
  parseCustomPorts(customPorts); // throws custom_port is invalid: <entry>

  const nicRaw = (optString(additional, 'interface_model_type') ?? 'virtio').toLowerCase();
  if (nicRaw !== 'virtio' && nicRaw !== 'e1000' && nicRaw !== 'rtl8139') throw NodeErrors.interfaceModel();

  const desc = optString(additional, 'desc') ?? '';
  if (desc.length > 1024) throw NodeErrors.descTooLong();

  return {
    taskId,
    imageName,
    desc,
    os,
    biosMode,
    sshPort,
    rdpPort,
    vncPort,
    gpuCount,
    cpuCores,
    memGb,
    diskGb,
    dataFileName,
    customPorts,
    multicast: optList(additional, 'multicast'),
    networkName: optString(additional, 'network_name') ?? '',
    networkFilters: optList(additional, 'network_filters'),
    publicIp: optString(additional, 'public_ip') ?? '',
    nicModel: nicRaw,
  };
}

export function parseModifyParams(additional: Record<string, unknown>): ModifyParams {
  const p: ModifyParams = {};
  p.sshPort = optPort(additional, 'new_ssh_port');
  p.rdpPort = optPort(additional, 'new_rdp_port');
  p.vncPort = optPort(additional, 'new_vnc_port');
  if (p.sshPort && p.rdpPort && p.sshPort === p.rdpPort) throw NodeErrors.samePorts();
  if (additional.new_custom_port !== undefined && additional.new_custom_port !== 'undefined') {
    p.customPorts = optList(additional, 'new_custom_port');
    parseCustomPorts(p.customPorts);
  }
  const gpu = optString(additional, 'new_gpu_count');
  if (gpu !== undefined) {
    if (!DIGITS.test(gpu)) throw NodeErrors.gpuCountInvalid();
    p.gpuCount = Number(gpu);
  }
  if (optString(additional, 'new_cpu_cores') !== undefined) p.cpuCores = positiveInt(additional, 'new_cpu_cores', NodeErrors.cpuInvalid);
  if (optString(additional, 'new_mem_size') !== undefined) p.memGb = positiveInt(additional, 'new_mem_size', NodeErrors.memInvalid);
  if (additional.new_network_filters !== undefined && additional.new_network_filters !== 'undefined') {
    p.networkFilters = optList(additional, 'new_network_filters');
  }
  const ip = optString(additional, 'new_public_ip');
  if (ip !== undefined) p.publicIp = ip;
  return p;
}
