// The web page in a real browser (Debian's chromium driven by puppeteer-core), as a renter uses it, through both
// topologies: sign in (the demo renter on `dbc up`; a session id + signature through `dbc client`), create a VM from
// the form, watch its status turn running by events, open the serial console, see the login prompt, log in with the
// returned credentials and run `uname -a`, read the output from the page; open the screen and check the canvas is
// not blank; power off from the page and see `closed` arrive. Screenshots go to DBC_ARTIFACTS (default
// dist/test-artifacts/ui), as test artefacts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { freeTcpPort, post, repoRoot, signedBody } from '../helpers/devnet.js';
import { freeVncPort } from '../helpers/tasks.js';
import { startTopology, type Topology, type TopologyKind } from '../helpers/topology.js';
import { signNonce } from '../../src/cli/sign.js';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
const ARTIFACTS = process.env.DBC_ARTIFACTS ?? join(repoRoot, 'dist', 'test-artifacts', 'ui');

async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) as `${string}.png`, fullPage: true });
}

/** the text of the xterm.js buffer on the page */
function terminalText(page: Page): Promise<string> {
  return page.evaluate(() => {
    const term = (globalThis as any).dbcTerm;
    if (!term) return '';
    const b = term.buffer.active;
    const lines: string[] = [];
    for (let i = 0; i < b.length; i++) lines.push(b.getLine(i)?.translateToString(true) ?? '');
    return lines.join('\n');
  });
}

/** how often re (global) matches the console's text */
async function count(page: Page, re: RegExp): Promise<number> {
  return (await terminalText(page)).match(re)?.length ?? 0;
}

/** until re matches more often than `before` times (the buffer is a screen, not a log: marks by length do not work) */
async function waitMore(page: Page, re: RegExp, before: number, timeoutMs: number): Promise<string> {
  const end = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < end) {
    last = await terminalText(page);
    if ((last.match(re)?.length ?? 0) > before) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`no new ${re} on the console within ${timeoutMs} ms; it shows:\n${last.trim().slice(-1500)}`);
}

for (const kind of ['up', 'p2p'] as TopologyKind[]) {
  describe(
    `the web page in chromium through ${kind === 'up' ? 'dbc up' : 'dbc client → libp2p → dbc node'}`,
    { timeout: 900_000, skip: !CHROMIUM && 'chromium not installed (scripts/setup-system.sh)' },
    () => {
      let topo: Topology;
      let browser: Browser;
      let page: Page;
      let api = '';
      let nodeId = '';
      let taskId = '';
      const errors: string[] = [];

      before(async () => {
        topo = await startTopology(kind);
        api = topo.nodes[0].api;
        nodeId = topo.nodes[0].node_id;
        browser = await puppeteer.launch({
          executablePath: CHROMIUM,
          headless: true,
          args: ['--no-sandbox', '--disable-dev-shm-usage', '--window-size=1280,900'],
        });
        page = await browser.newPage();
        await page.setViewport({ width: 1280, height: 900 });
        page.on('pageerror', (err) => errors.push(String(err)));
      });
      after(async () => {
        await browser?.close();
        await topo?.destroy();
      });

      test('sign in', async () => {
        const res = await page.goto(`${api}/`, { waitUntil: 'networkidle0' });
        assert.equal(res?.status(), 200);
        assert.match(page.url(), /\/ui\/$/);
        await page.waitForSelector('#signin-session');
        await shot(page, `${kind}-1-signin`);
        if (kind === 'up') {
          await page.click('#signin-devnet');
        } else {
          // a session the renter made elsewhere (dbc sign --session-id), pasted into the page
          const renter = topo.nodes[0].renter;
          const sid = await post(api, 'mining_nodes/session_id', signedBody(nodeId, renter.seed));
          assert.equal(sid.body.errcode, 0, sid.text);
          const s = signNonce(renter.seed, sid.body.message.session_id as string);
          await page.select('#node', nodeId);
          await page.type('#wallet', renter.wallet);
          await page.type('#session-id', s.session_id!);
          await page.type('#session-sign', s.session_id_sign!);
          await page.click('#signin-session');
        }
        await page.waitForSelector('#nav a', { timeout: 30_000 });
        await page.waitForFunction(() => (globalThis as any).document.body.dataset.events === 'open', { timeout: 30_000 });
      });

      test('create a VM from the form; its status turns running by events', async () => {
        await page.goto(`${api}/ui/#/create`);
        await page.waitForSelector('#create-form');
        const ssh = await freeTcpPort();
        const vnc = await freeVncPort();
        for (const [name, value] of [
          ['ssh_port', String(ssh)],
          ['vnc_port', String(vnc)],
          ['desc', `browser test ${kind}`],
        ]) {
          await page.$eval(`input[name=${name}]`, (el: any, v) => (el.value = v), value);
        }
        await page.select('#image_name', topo.nodes[0].image);
        await shot(page, `${kind}-2-create`);
        await page.click('#create-submit');
        await page.waitForFunction(() => /^#\/vm\//.test((globalThis as any).location.hash as string), { timeout: 30_000 });
        taskId = (await page.evaluate(() => (globalThis as any).location.hash as string)).replace('#/vm/', '');
        assert.match(taskId, /^[A-Za-z0-9]{20,24}$/);
        // the page asks nothing while it waits: the pill changes when the event arrives
        const seen = new Set<string>();
        const end = Date.now() + 240_000;
        while (Date.now() < end) {
          const s = await page.$eval('#vm-head .pill', (el) => el.getAttribute('data-status') ?? '').catch(() => '');
          seen.add(s);
          if (s === 'running') break;
          await new Promise((r) => setTimeout(r, 250));
        }
        assert.ok(seen.has('running'), [...seen].join(','));
        assert.ok(seen.has('creating'), [...seen].join(','));
        await page.waitForSelector('#vm-ops .op.done', { timeout: 30_000 });
        await shot(page, `${kind}-3-running`);
      });

      test('the serial console: the login prompt, log in with the returned credentials, uname -a', async () => {
        await page.waitForSelector('#terminal .xterm', { timeout: 30_000 });
        const user = (await page.$eval('#vm-ssh', (el) => el.textContent ?? '')).split(' ')[3]!.split('@')[0]!;
        const password = await page.$eval('#vm-password', (el: any) => (el.dataset.secret as string | undefined) ?? '');
        assert.ok(user && password, 'the page shows the login');
        await page.click('#terminal');
        const LOGIN = /login: /g;
        const PASSWORD = /Password: /g;
        const PROMPT = /\$ /g;
        const UNAME = /Linux \S+ .*x86_64/g;
        let n = await count(page, LOGIN);
        await page.keyboard.press('Enter');
        await waitMore(page, LOGIN, n, 60_000);
        n = await count(page, PASSWORD);
        await page.keyboard.type(`${user}\n`);
        await waitMore(page, PASSWORD, n, 30_000);
        n = await count(page, PROMPT);
        await page.keyboard.type(`${password}\n`);
        await waitMore(page, PROMPT, n, 30_000);
        n = await count(page, UNAME);
        await page.keyboard.type('uname -a\n');
        const text = await waitMore(page, UNAME, n, 30_000);
        assert.match(text, /Linux \S+ /);
        await shot(page, `${kind}-4-console`);
      });

      test('the screen: noVNC connects with no password prompt and the canvas is not blank', async () => {
        await page.click('[data-tab=screen]');
        await page.waitForSelector('#screen[data-connected=true]', { timeout: 30_000 });
        const lit = async () =>
          page.$eval('#screen canvas', (canvas: any) => {
            const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data as Uint8ClampedArray;
            let n = 0;
            for (let i = 0; i < px.length; i += 4) if (px[i]! + px[i + 1]! + px[i + 2]! > 60) n++;
            return { n, w: canvas.width as number, h: canvas.height as number };
          });
        let r = await lit();
        const end = Date.now() + 30_000;
        while (r.n < 200 && Date.now() < end) {
          await new Promise((res) => setTimeout(res, 500));
          r = await lit();
        }
        assert.ok(r.w >= 640 && r.h >= 400, `canvas ${r.w}x${r.h}`);
        assert.ok(r.n >= 200, `only ${r.n} lit pixels`);
        await shot(page, `${kind}-5-screen`);
      });

      test('power off from the page: closed arrives', async () => {
        await page.click('[data-action=poweroff]');
        await page.waitForFunction(() => (globalThis as any).document.querySelector('#vm-head .pill')?.getAttribute('data-status') === 'closed', {
          timeout: 60_000,
        });
        await shot(page, `${kind}-6-closed`);
        await page.goto(`${api}/ui/#/vms`);
        await page.waitForSelector(`#vm-table tr[data-task="${taskId}"]`, { timeout: 30_000 });
        await shot(page, `${kind}-7-list`);
        assert.deepEqual(errors, [], 'no script errors on the page');
        const del = await post(api, `tasks/delete/${taskId}`, signedBody(nodeId, topo.nodes[0].renter.seed));
        assert.equal(del.body.errcode, 0, del.text);
      });
    },
  );
}
