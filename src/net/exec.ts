// One way to run the network tools (ip, nft, bridge, sysctl): argv arrays, never a shell, stderr in the error.
import { execFile } from 'node:child_process';

export class CommandError extends Error {
  constructor(
    readonly cmd: string,
    readonly args: readonly string[],
    readonly code: number | string | null,
    readonly stderr: string,
  ) {
    super(`${cmd} ${args.join(' ')} failed: ${stderr.trim() || `exit ${String(code)}`}`);
  }
}

export function run(cmd: string, args: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args as string[],
      { timeout: opts.timeoutMs ?? 20_000, maxBuffer: 32 * 1024 * 1024, env: { ...process.env, LC_ALL: 'C' } },
      (err, stdout, stderr) => {
        if (err) {
          const code = (err as NodeJS.ErrnoException & { code?: number | string }).code ?? null;
          reject(new CommandError(cmd, args, code, String(stderr || err.message)));
        } else {
          resolve(String(stdout));
        }
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}
