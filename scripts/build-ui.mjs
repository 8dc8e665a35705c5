// build-ui.mjs - bundles the web page (ui/) into dist/ui with esbuild: app.js (one ES module with xterm.js, noVNC
/* global process */
// and the polkadot signer), index.html, style.css, xterm.css. No CDN: everything the page loads is in dist/ui.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'ui');
mkdirSync(out, { recursive: true });
const t0 = Date.now();
await build({
  entryPoints: [join(root, 'ui', 'src', 'main.ts')],
  outfile: join(out, 'app.js'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['chrome110', 'firefox110', 'safari16'],
  minify: true,
  sourcemap: true,
  legalComments: 'linked',
  logLevel: 'warning',
});
copyFileSync(join(root, 'ui', 'index.html'), join(out, 'index.html'));
copyFileSync(join(root, 'ui', 'style.css'), join(out, 'style.css'));
const require = createRequire(import.meta.url);
copyFileSync(join(dirname(require.resolve('@xterm/xterm/package.json')), 'css', 'xterm.css'), join(out, 'xterm.css'));
process.stdout.write(`build-ui: dist/ui in ${Date.now() - t0} ms\n`);
