// The core of the error registry: DbcError, the original's errcodes, and `define`, which turns one registry entry
// {code, errcode, http, text, where} into a constructor and records the entry in `registry` (docs/errors.md and
// test/unit/error-registry.test.ts are checked against that list). See src/errors/index.ts for the layering rule.

export class DbcError extends Error {
  constructor(
    readonly code: string,
    readonly errcode: number,
    message: string,
    readonly httpStatus: number = 200,
  ) {
    super(message);
    this.name = 'DbcError';
  }
  toEnvelope(): { errcode: number; message: string } {
    return { errcode: this.errcode, message: this.message };
  }
}

// errcodes of the original (src/dbc/common/error.h)
export const RPC_INVALID_REQUEST = -32600;
export const RPC_METHOD_NOT_FOUND = -32601;
export const RPC_RESPONSE_ERROR = -32701;
export const RPC_INVALID_PARAMS = -25;
export const E_DEFAULT = -3; // GPU-node generic failure
export const E_TIMEOUT = -1;

/** one error of the registry */
export interface ErrorDef {
  /** unique, stable, never on the wire (logs, tests, docs) */
  readonly code: string;
  /** the DBC errcode sent in the envelope */
  readonly errcode: number;
  /** the HTTP status of the envelope (GPU-node errors: 200) */
  readonly http: number;
  /** the message; each `{name}` is a variable part, filled from the constructor's arguments in order */
  readonly text: string;
  /** where or when it is raised (one line in docs/errors.md) */
  readonly where: string;
  /** a free-text or otherwise transitional constructor that is being removed (issue 11) */
  readonly deprecated?: true;
}

export type ErrorArg = string | number;

/** a registry constructor: call it for a DbcError; `def` is its entry */
export type ErrorCtor<A extends readonly ErrorArg[] = []> = ((...args: A) => DbcError) & { readonly def: ErrorDef };

const entries: ErrorDef[] = [];

/** every entry, in definition order */
export const registry: readonly ErrorDef[] = entries;

const HOLE = /\{(\w+)\}/g;

/** the names of a text's variable parts, in order */
export function holes(text: string): string[] {
  return [...text.matchAll(HOLE)].map((m) => m[1]!);
}

/** a text with its variable parts filled in order (one pass: an argument's own braces stay as they are) */
export function fill(text: string, args: readonly unknown[]): string {
  let i = 0;
  return text.replace(HOLE, () => String(args[i++]));
}

/** registers an entry and returns its constructor; A names the arguments, one per `{hole}` of the text */
export function define<A extends readonly ErrorArg[] = []>(def: ErrorDef): ErrorCtor<A> {
  if (entries.some((e) => e.code === def.code)) throw new Error(`duplicate error code ${def.code}`);
  entries.push(def);
  const ctor = (...args: A): DbcError => new DbcError(def.code, def.errcode, fill(def.text, args), def.http);
  return Object.assign(ctor, { def });
}

/** is err the error that ctor builds? (compares codes) */
export function isError(err: unknown, ctor: { readonly def: ErrorDef }): err is DbcError {
  return err instanceof DbcError && err.code === ctor.def.code;
}
