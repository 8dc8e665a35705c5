// Chain rentals on the command line:
//   dbc fake-chain [--port 9944] [--host 127.0.0.1] [--block 1000] [--block-ms 6000] [--manual]
//       a fake DBC chain JSON-RPC server (rental/fake-chain.ts) for demos and tests
//   dbc chain-call --rpc URL <method> [params-json]
//       one JSON-RPC call to a chain node (real or fake), e.g. dev_setBlock '[2000]'
// and the rental flags shared by `dbc up` and `dbc node` (addRentalOptions / rentalsFromFlags).
import type { Command } from 'commander';
import type { RentalSourceFactory } from '../node/bootstrap.js';
import { ChainRentals } from '../rental/chain.js';
import { normalizeEndpoint } from '../rental/chain-rpc.js';
import { FakeChain, chainCall } from '../rental/fake-chain.js';

export interface ChainRentalsConfig {
  /** chain RPC endpoints: http(s) URLs or host:port (https) */
  endpoints: string[];
  /** terminatingRental_* RPC family */
  terminatingRental?: boolean;
  /** serve the last verified state this long while the chain is unreachable */
  outageGraceMs?: number;
  /** fixed block time; default: measured from the chain */
  blockTimeMs?: number;
}

/** the rental source factory for startGpuNode({ rentals }): the machine id is the node id */
export function chainRentalsFactory(cfg: ChainRentalsConfig): RentalSourceFactory {
  return ({ nodeId, logger }) =>
    new ChainRentals({
      machineId: nodeId,
      rpc: { endpoints: cfg.endpoints },
      terminatingRental: cfg.terminatingRental,
      outageGraceMs: cfg.outageGraceMs,
      blockTimeMs: cfg.blockTimeMs,
      logger,
    });
}

export type RentalsKind = 'local' | 'chain' | 'chain-fake';

export interface RentalFlags {
  rentals?: string;
  chainRpc?: string[];
  chainOutageGrace?: string;
  chainTerminatingRental?: boolean;
  chainBlockMs?: string;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** --rentals, --chain-rpc (repeatable), --chain-outage-grace, --chain-terminating-rental, --chain-block-ms */
export function addRentalOptions(cmd: Command, opts: { allowFake: boolean }): Command {
  return cmd
    .option(
      '--rentals <source>',
      `who may use the machine: local (registry, dbc rental)${opts.allowFake ? ', chain, or chain-fake (an in-process fake chain)' : ' or chain'}`,
      'local',
    )
    .option('--chain-rpc <url>', 'DBC chain JSON-RPC endpoint (http(s)://host:port or host:port = https); repeatable', collect, [])
    .option('--chain-outage-grace <seconds>', 'while the chain is unreachable, serve the last verified state this long', '300')
    .option('--chain-terminating-rental', 'use the terminatingRental_* RPC methods (chain_additional_field=terminatingRental)')
    .option('--chain-block-ms <ms>', 'fixed block time instead of reading it from the chain');
}

/** validated rental settings from the flags of addRentalOptions */
export function rentalsFromFlags(f: RentalFlags, opts: { allowFake: boolean }): { kind: RentalsKind; chain?: ChainRentalsConfig } {
  const kind = (f.rentals ?? 'local') as RentalsKind;
  const kinds: RentalsKind[] = opts.allowFake ? ['local', 'chain', 'chain-fake'] : ['local', 'chain'];
  if (!kinds.includes(kind)) throw new Error(`--rentals must be one of ${kinds.join(', ')}`);
  const rpc = f.chainRpc ?? [];
  if (kind === 'local') {
    if (rpc.length > 0) throw new Error('--chain-rpc needs --rentals chain');
    return { kind };
  }
  if (kind === 'chain' && rpc.length === 0) throw new Error('--rentals chain needs at least one --chain-rpc URL');
  if (kind === 'chain-fake' && rpc.length > 0) throw new Error('--rentals chain-fake starts its own chain; leave out --chain-rpc');
  for (const e of rpc) {
    try {
      normalizeEndpoint(e);
    } catch (err) {
      throw new Error(`--chain-rpc ${e}: ${(err as Error).message}`);
    }
  }
  const grace = Number(f.chainOutageGrace ?? '300');
  if (!Number.isFinite(grace) || grace < 0 || grace > 30 * 86400) throw new Error('--chain-outage-grace must be in [0, 2592000] seconds');
  let blockTimeMs: number | undefined;
  if (f.chainBlockMs !== undefined) {
    blockTimeMs = Number(f.chainBlockMs);
    if (!Number.isInteger(blockTimeMs) || blockTimeMs < 100 || blockTimeMs > 600_000) throw new Error('--chain-block-ms must be an integer in [100, 600000]');
  }
  return {
    kind,
    chain: { endpoints: rpc, terminatingRental: f.chainTerminatingRental === true, outageGraceMs: grace * 1000, blockTimeMs },
  };
}

export function registerChain(program: Command): void {
  program
    .command('fake-chain')
    .description('run a fake DBC chain JSON-RPC server (tests, demos); drive it with dbc chain-call dev_* methods')
    .option('--port <n>', 'port', '9944')
    .option('--host <addr>', 'address', '127.0.0.1')
    .option('--block <n>', 'starting block height', '1000')
    .option('--block-ms <ms>', 'block time the chain shows', '6000')
    .option('--manual', 'do not advance a block every block time (set it with dev_setBlock / dev_advance)')
    .action(async (o: { port: string; host: string; block: string; blockMs: string; manual?: boolean }) => {
      const port = Number(o.port);
      const block = Number(o.block);
      const blockMs = Number(o.blockMs);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error('--port must be in [0, 65535]');
      if (!Number.isSafeInteger(block) || block < 0) throw new Error('--block must be a non-negative integer');
      if (!Number.isInteger(blockMs) || blockMs < 100) throw new Error('--block-ms must be an integer >= 100');
      const chain = new FakeChain({ block, blockMs, autoAdvance: !o.manual });
      const url = await chain.listen(port, o.host);
      console.log(JSON.stringify({ rpc: url, block, blockMs, autoAdvance: !o.manual }));
      console.log(fakeChainHelp(url));
      const stop = () => {
        chain.close().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });

  program
    .command('chain-call')
    .description('one JSON-RPC call to a DBC chain node (real or fake); prints the result as JSON')
    .requiredOption('--rpc <url>', 'chain RPC endpoint')
    .argument('<method>', 'e.g. chain_getBlock, rentMachine_getRentOrder, dev_setBlock')
    .argument('[params]', 'JSON array of params', '[]')
    .action(async (method: string, paramsText: string, o: { rpc: string }) => {
      let params: unknown;
      try {
        params = JSON.parse(paramsText);
      } catch {
        throw new Error(`params must be a JSON array: ${paramsText}`);
      }
      if (!Array.isArray(params)) throw new Error('params must be a JSON array');
      console.log(JSON.stringify(await chainCall(normalizeEndpoint(o.rpc), method, params), null, 2));
    });
}

export function fakeChainHelp(url: string, ids: { machine?: string; renter?: string } = {}): string {
  const machine = ids.machine ?? '<node_id>';
  const renter = ids.renter ?? '<ss58 wallet>';
  const call = (method: string, params: string) => `dbc chain-call --rpc ${url} ${method} '${params}'`;
  return [
    '# drive the fake chain:',
    call('dev_setMachine', `["${machine}", "rented"]`) + '    # or online, committeeVerifying',
    call('dev_addOrder', `[{"machineId":"${machine}","renter":"${renter}","rentEnd":999999,"gpuNum":0}]`),
    call('dev_setCommittee', `["${renter}", "${machine}", [1000, 5000, 9000]]`),
    call('dev_advance', '[100]') + '    # or dev_setBlock [n]',
    call('dev_setOffline', '[true]') + '    # chain methods stop answering (outage)',
    call('dev_state', '[]'),
  ].join('\n');
}
