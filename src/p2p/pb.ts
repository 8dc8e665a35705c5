// The few protobuf messages of the standard libp2p NAT protocols (AutoNAT v1, DCUtR) encoded and decoded by hand:
// varints (wire type 0) and length-delimited bytes (wire type 2) are all they use. Unknown fields are skipped, as
// protobuf requires; anything malformed throws.

export type PbValue = number | Uint8Array;
/** field number -> values in wire order */
export type PbFields = Map<number, PbValue[]>;

function pushVarint(out: number[], n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new Error('varint out of range');
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
}

/** fields in order; a number is a varint, bytes are length-delimited */
export function pbEncode(fields: Array<[number, PbValue | undefined]>): Uint8Array {
  const out: number[] = [];
  for (const [no, v] of fields) {
    if (v === undefined) continue;
    if (typeof v === 'number') {
      pushVarint(out, no * 8);
      pushVarint(out, v);
    } else {
      pushVarint(out, no * 8 + 2);
      pushVarint(out, v.length);
      for (const b of v) out.push(b);
    }
  }
  return Uint8Array.from(out);
}

export function pbDecode(buf: Uint8Array): PbFields {
  const fields: PbFields = new Map();
  let i = 0;
  const varint = (): number => {
    let n = 0;
    let mul = 1;
    for (let k = 0; k < 8; k++) {
      if (i >= buf.length) throw new Error('truncated varint');
      const b = buf[i++]!;
      n += (b & 0x7f) * mul;
      if (b < 0x80) return n;
      mul *= 0x80;
    }
    throw new Error('varint too long');
  };
  while (i < buf.length) {
    const key = varint();
    const no = Math.floor(key / 8);
    const wire = key % 8;
    let v: PbValue;
    if (wire === 0) v = varint();
    else if (wire === 2) {
      const len = varint();
      if (i + len > buf.length) throw new Error('truncated field');
      v = buf.subarray(i, i + len);
      i += len;
    } else if (wire === 1 || wire === 5) {
      i += wire === 1 ? 8 : 4;
      if (i > buf.length) throw new Error('truncated field');
      continue;
    } else throw new Error(`unsupported wire type ${wire}`);
    const list = fields.get(no);
    if (list) list.push(v);
    else fields.set(no, [v]);
  }
  return fields;
}

export const pbNumber = (f: PbFields, no: number): number | undefined => {
  const v = f.get(no)?.[0];
  return typeof v === 'number' ? v : undefined;
};
export const pbBytes = (f: PbFields, no: number): Uint8Array | undefined => {
  const v = f.get(no)?.[0];
  return v instanceof Uint8Array ? v : undefined;
};
export const pbBytesList = (f: PbFields, no: number): Uint8Array[] => (f.get(no) ?? []).filter((v): v is Uint8Array => v instanceof Uint8Array);
