// Runs src/net/nft.ts in whatever network namespace it is started in (the integration test starts it with
// `ip netns exec <ns> node dist/test/helpers/nft-apply.js ...`), so the test never touches the root ruleset.
//   apply '<NftState JSON>'   applyRuleset
//   list <table>              prints the listing; exit 3 when the table is absent
//   delete <table>            deleteTable
import { applyRuleset, deleteTable, listTable, type NftState } from '../../src/net/nft.js';

async function main(argv: string[]): Promise<number> {
  const [cmd, arg] = argv;
  if (arg === undefined) throw new Error('usage: nft-apply apply <state json> | list <table> | delete <table>');
  switch (cmd) {
    case 'apply':
      await applyRuleset(JSON.parse(arg) as NftState);
      return 0;
    case 'list': {
      const text = await listTable(arg);
      if (text === null) return 3;
      process.stdout.write(text);
      return 0;
    }
    case 'delete':
      await deleteTable(arg);
      return 0;
    default:
      throw new Error(`unknown command ${String(cmd)}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
