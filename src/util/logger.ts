// The logging contract every module takes (pino's shape): components receive a logger, tests pass a quiet one.
// This is the one definition: a module that needs fewer levels takes Pick<Logger, ...>, never an alias of its own.
export interface Logger {
  info(obj: unknown, msg?: string): void;
  warn(obj: unknown, msg?: string): void;
  error(obj: unknown, msg?: string): void;
  debug(obj: unknown, msg?: string): void;
}

/** a logger that drops everything (tests, tools) */
export const quietLogger: Logger = { info() {}, warn() {}, error() {}, debug() {} };
