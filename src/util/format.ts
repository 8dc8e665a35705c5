// Small formatting helpers shared by replies.

/** bytes as the original's scale_size: the largest unit up to G, integer or two decimals ("1.5G", "512M") */
export function formatBytes(bytes: number): string {
  const units = ['B', 'K', 'M', 'G'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  const text = Number.isInteger(v) ? String(v) : v.toFixed(2).replace(/\.?0+$/, '');
  return `${text}${units[i]}`;
}

/** 'YYYY-mm-dd HH:MM:SS' in local time, as the original's create_time */
export function localTimestamp(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

const PASSWORD_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_/+[]@#^';
const LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** the original genpwd(): first char a letter, then chars from [A-Za-z0-9_/+[]@#^] */
export function generatePassword(length: number, randomBytes: (n: number) => Buffer): string {
  const bytes = randomBytes(length);
  let out = LETTERS[bytes[0]! % LETTERS.length]!;
  for (let i = 1; i < length; i++) out += PASSWORD_CHARS[bytes[i]! % PASSWORD_CHARS.length]!;
  return out;
}

const BASE58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';

export function randomBase58(length: number, randomBytes: (n: number) => Buffer): string {
  const bytes = randomBytes(length);
  let out = '';
  for (let i = 0; i < length; i++) out += BASE58[bytes[i]! % BASE58.length]!;
  return out;
}
