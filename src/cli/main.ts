#!/usr/bin/env node
// `dbc`: one binary, every role.
// first: js-libp2p needs Promise.withResolvers, which Node 20 lacks
import '../p2p/polyfill.js';
import { Command } from 'commander';
import { registerChain } from './chain.js';
import { registerKeys } from './keys.js';
import { registerRental } from './rental.js';
import { registerClient, registerNode, registerSeed } from './roles.js';
import { registerSign } from './sign.js';
import { registerUp } from './up.js';
import { DBC_NODE_VERSION } from '../protocol/types.js';

const program = new Command();
program.name('dbc').description('DeepBrainChain-compatible GPU node, client gateway and tools').version(DBC_NODE_VERSION);
registerUp(program);
registerSign(program);
registerKeys(program);
registerRental(program);
registerChain(program);
registerSeed(program);
registerNode(program);
registerClient(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(`dbc: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
