// Protocol side of the DBC errors: the registry itself lives in src/errors/ (the bottom layer every layer may import);
// this module re-exports it for existing imports and adds what only the API layer needs (the envelope of any error).
import { DbcError, E_DEFAULT } from '../errors/index.js';

export * from '../errors/index.js';

export function toEnvelope(err: unknown): { status: number; body: { errcode: number; message: string } } {
  if (err instanceof DbcError) return { status: err.httpStatus, body: err.toEnvelope() };
  const text = err instanceof Error ? err.message : String(err);
  return { status: 200, body: { errcode: E_DEFAULT, message: `internal error: ${text}` } };
}
