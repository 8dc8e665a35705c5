// `npm run bench`: every benchmark, one after another, each as its own child process (so none shares an event loop
// or leftover load with another), then one combined JSON object on stdout. A bench that fails is reported as
// {"error": ...} and the others still run; the exit status is 1 then.
import { spawn } from 'node:child_process';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

const BENCHES: Array<[key: string, file: string]> = [
  ['overlay', 'overlay.js'],
  ['api_auth', 'api-auth.js'],
  ['boot', 'boot.js'],
  ['auth_verify', 'auth-verify.js'],
  ['images_transfer', 'images-transfer.js'],
  ['snapshot', 'snapshot.js'],
  ['p2p_relay', 'p2p-relay.js'],
  ['forward_throughput', 'forward-throughput.js'],
  ['guest_isolation', 'guest-isolation.js'],
];

function runBench(file: string): Promise<unknown> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [join(here, file)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      process.stderr.write(d);
    });
    child.on('error', (e) => resolve({ error: `cannot run ${file}: ${e.message}` }));
    child.on('close', (code, signal) => {
      process.stderr.write(`bench ${file}: ${signal ?? `exit ${code}`} after ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
      // the result: all of stdout as one JSON object (pretty-printed or not), else the last line that is one
      const candidates = [out.trim(), ...out.trim().split('\n').reverse()];
      for (const text of candidates) {
        try {
          const j = JSON.parse(text) as unknown;
          if (j && typeof j === 'object') {
            resolve(code === 0 ? j : { error: `${file} exited with ${signal ?? code}`, result: j });
            return;
          }
        } catch {
          // not JSON
        }
      }
      resolve({ error: `${file} exited with ${signal ?? code} and printed no JSON`, stderr: err.trim().slice(-2000) });
    });
  });
}

// printed in the order the brief names them
const combined: Record<string, unknown> = { overlay: null, auth_verify: null, api_auth: null, boot: null, images_transfer: null, snapshot: null };
let failed = false;
for (const [key, file] of BENCHES) {
  const r = await runBench(file);
  combined[key] = r;
  if (r && typeof r === 'object' && 'error' in r) failed = true;
}
combined.machine = { cores: os.cpus().length, cpu: os.cpus()[0]?.model ?? '', loadavg_end: os.loadavg().map((x) => Math.round(x * 100) / 100) };
process.stdout.write(`${JSON.stringify(combined, null, 2)}\n`);
if (failed) process.exitCode = 1;
