// `dbc keys`: shows the node identity (node_id = sr25519 public key), creating dat/node.dat-style keys if missing.
import type { Command } from 'commander';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadOrCreateNodeIdentity, NODE_DAT } from '../auth/identity.js';

export function registerKeys(program: Command): void {
  program
    .command('keys')
    .description('print the node identity, creating it if missing')
    .option('--data-dir <dir>', 'node data directory', join(homedir(), '.dbc'))
    .action((opts: { dataDir: string }) => {
      try {
        const dataDir = resolve(opts.dataDir);
        const identity = loadOrCreateNodeIdentity(dataDir);
        const out = { node_id: identity.nodeId, address: identity.address, file: join(dataDir, NODE_DAT) };
        process.stdout.write(`${JSON.stringify(out)}\n`);
      } catch (err) {
        process.stderr.write(`dbc keys: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exitCode = 1;
      }
    });
}
