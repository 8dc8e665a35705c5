// GPUs as `nvidia-smi -q -x` reports them. nvidia-smi's XML is flat and regular (no CDATA, no same-name nesting
// inside the elements we read), so a small tag reader does instead of an XML library.

export interface GpuInfo {
  /** position in nvidia-smi's output, which is the CUDA/nvidia-smi index (PCI bus order) */
  index: number;
  name: string;
  uuid: string;
  /** normalised `0000:3b:00.0`, lowercase, as sysfs and vfio name it */
  pciBusId: string;
  memTotalMiB: number;
  memUsedMiB: number;
  driverVersion: string;
  cudaVersion: string;
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function decode(text: string): string {
  return text
    .replace(/&(amp|lt|gt|quot|apos);/g, (_, e: string) => ENTITIES[e]!)
    .replace(/&#(\d+);/g, (_, d: string) => String.fromCodePoint(Number(d)))
    .replace(/&#x([0-9a-fA-F]+);/g, (_, h: string) => String.fromCodePoint(parseInt(h, 16)))
    .trim();
}

/** inner text of the first `<name ...>…</name>` in xml, or null */
function element(xml: string, name: string): string | null {
  const open = new RegExp(`<${name}(?:\\s[^>]*)?>`, 'g');
  const m = open.exec(xml);
  if (!m) return null;
  const start = m.index + m[0].length;
  const end = xml.indexOf(`</${name}>`, start);
  return end < 0 ? null : xml.slice(start, end);
}

/** every `<name ...>…</name>` block with its attribute text */
function elements(xml: string, name: string): Array<{ attrs: string; body: string }> {
  const out: Array<{ attrs: string; body: string }> = [];
  const open = new RegExp(`<${name}(\\s[^>]*)?>`, 'g');
  let m: RegExpExecArray | null;
  while ((m = open.exec(xml))) {
    const start = m.index + m[0].length;
    const end = xml.indexOf(`</${name}>`, start);
    if (end < 0) break;
    out.push({ attrs: m[1] ?? '', body: xml.slice(start, end) });
    open.lastIndex = end;
  }
  return out;
}

function text(xml: string, ...path: string[]): string {
  let cur: string | null = xml;
  for (const name of path) {
    if (cur === null) return '';
    cur = element(cur, name);
  }
  return cur === null ? '' : decode(cur);
}

/** "143771 MiB" -> 143771; "N/A" -> 0 */
function mib(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(MiB|GiB|KiB)?$/i.exec(value);
  if (!m) return 0;
  const n = Number(m[1]);
  const unit = (m[2] ?? 'MiB').toLowerCase();
  return Math.round(unit === 'gib' ? n * 1024 : unit === 'kib' ? n / 1024 : n);
}

/** `00000000:3B:00.0` (nvidia-smi's 8-digit domain) -> `0000:3b:00.0`; '' when not a bus id */
export function normalisePciBusId(id: string): string {
  const m = /^(?:([0-9a-fA-F]{1,8}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])$/.exec(id.trim());
  if (!m) return '';
  const domain = parseInt(m[1] ?? '0', 16);
  if (domain > 0xffff) return '';
  const hex = (s: string, width: number) => parseInt(s, 16).toString(16).padStart(width, '0');
  return `${domain.toString(16).padStart(4, '0')}:${hex(m[2]!, 2)}:${hex(m[3]!, 2)}.${m[4]}`;
}

export function parseNvidiaSmiXml(xml: string): GpuInfo[] {
  const root = element(xml, 'nvidia_smi_log');
  if (root === null) return [];
  // driver/cuda versions sit before the first <gpu>; read them from that head so no per-GPU field shadows them
  const firstGpu = root.search(/<gpu(\s[^>]*)?>/);
  const head = firstGpu < 0 ? root : root.slice(0, firstGpu);
  const driverVersion = text(head, 'driver_version');
  const cudaVersion = text(head, 'cuda_version');
  return elements(root, 'gpu').map((gpu, index) => {
    const attrId = /\bid="([^"]*)"/.exec(gpu.attrs)?.[1] ?? '';
    const pciBusId = normalisePciBusId(text(gpu.body, 'pci', 'pci_bus_id')) || normalisePciBusId(attrId);
    return {
      index,
      name: text(gpu.body, 'product_name'),
      uuid: text(gpu.body, 'uuid'),
      pciBusId,
      memTotalMiB: mib(text(gpu.body, 'fb_memory_usage', 'total')),
      memUsedMiB: mib(text(gpu.body, 'fb_memory_usage', 'used')),
      driverVersion,
      cudaVersion,
    };
  });
}
