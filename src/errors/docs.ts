// Renders the registry as the tables of docs/errors.md (between the `registry` markers). The registry test fails when
// the file and the registry differ; regenerate with
//   npx tsc -p tsconfig.json && node dist/src/errors/docs.js --write
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { registry, type ErrorDef } from './dbc-error.js';
import './index.js';

export const BEGIN = '<!-- registry:begin (generated from src/errors by src/errors/docs.ts; do not edit by hand) -->';
export const END = '<!-- registry:end -->';

const GROUPS: Array<{ prefix: string; title: string }> = [
  { prefix: 'CLIENT_', title: 'Client gateway (`ClientErrors`, src/errors/client.ts)' },
  { prefix: 'NODE_', title: 'GPU node, tasks (`NodeErrors`, src/errors/node.ts)' },
  { prefix: 'AUTH_', title: 'GPU node, check_authority (`AuthErrors`, src/errors/auth.ts)' },
  { prefix: 'STORAGE_', title: 'Disks, snapshots, images (`StorageErrors`, src/errors/storage.ts)' },
  { prefix: 'LAN_', title: 'Private LANs and multicast (`LanErrors`, src/errors/lan.ts)' },
  { prefix: 'FILTER_', title: 'Network filters (`FilterErrors`, src/errors/lan.ts)' },
];

const cell = (s: string) => s.replace(/\|/g, '\\|');

function table(defs: readonly ErrorDef[]): string[] {
  return [
    '| code | errcode | HTTP | text | where / when |',
    '| --- | --- | --- | --- | --- |',
    ...defs.map((d) => `| ${d.code} | ${d.errcode} | ${d.http} | \`${cell(d.text)}\` | ${cell(d.where)} |`),
  ];
}

/** the generated part of docs/errors.md */
export function renderRegistry(): string {
  const out: string[] = [BEGIN];
  const live = registry.filter((d) => !d.deprecated);
  for (const g of GROUPS) {
    out.push('', `### ${g.title}`, '', ...table(live.filter((d) => d.code.startsWith(g.prefix))));
  }
  const old = registry.filter((d) => d.deprecated);
  if (old.length > 0) {
    out.push('', '### Being removed (issue 11): free-text and transitional constructors', '', ...table(old));
  }
  out.push('', END);
  return out.join('\n');
}

/** docs/errors.md with its generated part replaced */
export function withRegistry(doc: string): string {
  const a = doc.indexOf(BEGIN);
  const b = doc.indexOf(END);
  if (a < 0 || b < a) throw new Error('docs/errors.md has no registry markers');
  return doc.slice(0, a) + renderRegistry() + doc.slice(b + END.length);
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv.includes('--write')) {
  const file = fileURLToPath(new URL('../../../docs/errors.md', import.meta.url));
  writeFileSync(file, withRegistry(readFileSync(file, 'utf8')));
}
