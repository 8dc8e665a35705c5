// `dbc rental grant|revoke|list`: the local rental registry in a node's data dir. A running node reads the same
// SQLite database on every request, so a grant takes effect at once.
import type { Command } from 'commander';
import { join } from 'node:path';
import { decodeAddress } from '@polkadot/util-crypto';
import { LocalRentals } from '../rental/local.js';
import { openDb } from '../store/db.js';
import { defaultDataDir } from './paths.js';

function checkWallet(wallet: string): string {
  try {
    decodeAddress(wallet);
    return wallet;
  } catch {
    throw new Error(`not an SS58 wallet address: ${wallet}`);
  }
}

export function parseUntil(opts: { until?: string; days?: string }, now = Date.now()): number {
  if (opts.until && opts.days) throw new Error('give --until or --days, not both');
  if (opts.until) {
    const ms = Date.parse(opts.until);
    if (Number.isNaN(ms)) throw new Error(`--until is not an ISO date: ${opts.until}`);
    return ms;
  }
  const days = Number(opts.days ?? '30');
  if (!Number.isFinite(days) || days <= 0 || days > 3650) throw new Error('--days must be a number of days in (0, 3650]');
  return now + days * 24 * 3600_000;
}

function withRegistry<T>(dataDir: string, fn: (r: LocalRentals) => T): T {
  const db = openDb(join(dataDir, 'node.db'));
  try {
    return fn(new LocalRentals(db));
  } finally {
    db.close();
  }
}

export function registerRental(program: Command): void {
  const rental = program.command('rental').description('local rental registry of a GPU node');
  rental
    .command('grant')
    .description('let a wallet rent this machine')
    .option('--data-dir <dir>', 'node data directory', defaultDataDir())
    .requiredOption('--wallet <ss58>', 'renter wallet')
    .option('--gpus <n>', 'GPUs rented', '0')
    .option('--until <iso>', 'end of the rental (ISO 8601)')
    .option('--days <n>', 'length of the rental in days (default 30)')
    .action((o: { dataDir: string; wallet: string; gpus: string; until?: string; days?: string }) => {
      const gpus = Number(o.gpus);
      if (!Number.isInteger(gpus) || gpus < 0 || gpus > 64) throw new Error('--gpus must be an integer 0..64');
      const until = parseUntil(o);
      const r = withRegistry(o.dataDir, (reg) => reg.grant(checkWallet(o.wallet), gpus, until));
      console.log(JSON.stringify({ wallet: r.account, gpus: r.gpus, until: new Date(r.untilMs).toISOString() }));
    });
  rental
    .command('revoke')
    .description('end a rental now')
    .option('--data-dir <dir>', 'node data directory', defaultDataDir())
    .requiredOption('--wallet <ss58>', 'renter wallet')
    .action((o: { dataDir: string; wallet: string }) => {
      const done = withRegistry(o.dataDir, (reg) => reg.revoke(checkWallet(o.wallet)));
      console.log(JSON.stringify({ wallet: o.wallet, revoked: done }));
      if (!done) process.exitCode = 1;
    });
  rental
    .command('list')
    .description('list rentals')
    .option('--data-dir <dir>', 'node data directory', defaultDataDir())
    .action((o: { dataDir: string }) => {
      console.log(
        JSON.stringify(
          withRegistry(o.dataDir, (reg) => reg.list()),
          null,
          2,
        ),
      );
    });
}
