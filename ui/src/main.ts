// dbc-node's web page: machine info, VMs with live status (events), create, VM detail with the serial console
// (xterm.js) and the screen (noVNC), power actions, disks, snapshots, LANs, operations with progress bars.
// Plain DOM, no framework; every request goes through api.ts with the session pair.
import { Terminal } from '@xterm/xterm';
import RFB from '@novnc/novnc';
import { Api, devnetAvailable, devnetSignIn, extensionAccounts, extensionSignIn, rawPost, type Auth } from './api.js';

type Attrs = Record<string, string | number | boolean | ((e: Event) => void) | undefined>;
function h(tag: string, attrs: Attrs = {}, ...kids: Array<Node | string | null | undefined | false>): HTMLElement {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const kid of kids) if (kid !== null && kid !== undefined && kid !== false) el.append(kid instanceof Node ? kid : document.createTextNode(kid));
  return el;
}
const $app = () => document.getElementById('app')!;

interface Task {
  task_id: string;
  status: string;
  image_name?: string;
  cpu_cores?: number;
  mem_size?: string;
  disk_data?: string;
  ssh_ip?: string;
  ssh_port?: string;
  rdp_port?: string;
  user_name?: string;
  login_password?: string;
  create_time?: string;
  desc?: string;
  bios_mode?: string;
  guest_ready?: boolean;
  vnc_port?: string;
  network_name?: string;
  local_address?: string;
}
interface Op {
  operation_id: string;
  task_id: string;
  kind: string;
  status: string;
  progress: number;
  stage: string;
  error?: string;
  updated_at?: string;
}

const state = {
  api: undefined as Api | undefined,
  tasks: new Map<string, Task>(),
  ops: new Map<string, Op>(),
  lastEventId: '',
  events: undefined as EventSource | undefined,
  view: '',
  cleanup: [] as Array<() => void>,
};

// --- status pills, toasts ---------------------------------------------------------------------------------------
const STATUS_CLASS: Record<string, string> = { running: 'ok', closed: 'off', creating: 'busy', starting: 'busy', restarting: 'busy', resetting: 'busy' };
function pill(status: string): HTMLElement {
  const cls = STATUS_CLASS[status] ?? (status.includes('error') || status === 'failed' ? 'bad' : status.endsWith('ing') ? 'busy' : 'off');
  return h('span', { class: `pill ${cls}`, 'data-status': status }, status);
}
function toast(text: string, bad = false): void {
  const t = h('div', { class: `toast ${bad ? 'bad' : ''}` }, text);
  document.body.append(t);
  setTimeout(() => t.remove(), bad ? 8000 : 3500);
}
async function act(label: string, fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
    toast(label);
  } catch (err) {
    toast(`${label}: ${(err as Error).message}`, true);
  }
}
function progressBar(op: Op): HTMLElement {
  const pct = Math.max(0, Math.min(100, Math.round(op.progress)));
  return h(
    'div',
    { class: `op ${op.status}`, 'data-op': op.operation_id },
    h(
      'div',
      { class: 'op-head' },
      h('b', {}, op.kind),
      ' ',
      h('span', { class: 'muted' }, op.task_id ? op.task_id.slice(0, 10) : ''),
      h('span', { class: 'op-status' }, `${op.status} · ${pct}%`),
    ),
    h('div', { class: 'bar' }, h('div', { class: 'fill', style: `width:${pct}%` })),
    h('div', { class: 'op-stage muted' }, op.error ? `${op.stage} — ${op.error}` : op.stage),
  );
}

// --- events: one SSE stream for the page; reopened with a fresh ticket after the last event seen -------------------
async function openEvents(): Promise<void> {
  const api = state.api!;
  state.events?.close();
  const t = await api.post<{ url: string }>('events/ticket');
  if (t.errcode !== 0) {
    setTimeout(() => void openEvents(), 5000);
    return;
  }
  const url = t.message.url + (state.lastEventId ? `&last_event_id=${encodeURIComponent(state.lastEventId)}` : '');
  const es = new EventSource(url);
  state.events = es;
  document.body.dataset.events = 'connecting';
  es.onopen = () => (document.body.dataset.events = 'open');
  es.onmessage = (m) => {
    state.lastEventId = m.lastEventId || state.lastEventId;
    onEvent(JSON.parse(m.data as string));
  };
  es.onerror = () => {
    // the ticket was single use: EventSource's own retry would be refused; get a new one
    es.close();
    document.body.dataset.events = 'reconnecting';
    if (state.events === es) setTimeout(() => void openEvents(), 2000);
  };
}

function onEvent(e: any): void {
  if (e.type === 'task.status') {
    const t = state.tasks.get(e.task_id) ?? ({ task_id: e.task_id } as Task);
    t.status = e.status;
    state.tasks.set(e.task_id, t);
    if (e.status === 'running' || e.status === 'closed') void refreshTask(e.task_id);
  } else if (e.type === 'task.deleted') {
    state.tasks.delete(e.task_id);
  } else if (e.operation_id) {
    state.ops.set(e.operation_id, {
      operation_id: e.operation_id,
      task_id: e.task_id,
      kind: e.kind,
      status: e.status,
      progress: e.progress,
      stage: e.stage,
      error: e.error,
      updated_at: e.time,
    });
  }
  document.dispatchEvent(new CustomEvent('dbc-event', { detail: e }));
}

async function refreshTask(id: string): Promise<void> {
  const r = await state.api!.post<Task>(`tasks/${id}`);
  if (r.errcode === 0) {
    state.tasks.set(id, r.message);
    document.dispatchEvent(new CustomEvent('dbc-event', { detail: { type: 'task.detail', task_id: id } }));
  }
}

async function loadTasks(): Promise<void> {
  const r = await state.api!.post<Task[]>('tasks');
  if (r.errcode === 0 && Array.isArray(r.message)) for (const t of r.message) state.tasks.set(t.task_id, { ...state.tasks.get(t.task_id), ...t });
  // the list carries id, status, time and desc; the table shows more
  await Promise.all([...state.tasks.keys()].slice(0, 50).map((id) => refreshTask(id)));
}

const imageNames = (info: any): string[] =>
  Array.isArray(info?.images) ? info.images.map((i: any) => (typeof i === 'string' ? i : String(i.image_name))) : [];
const lanList = (m: any): any[] => (Array.isArray(m) ? m : Array.isArray(m?.networks) ? m.networks : []);

/** re-render the current view on every event (the views are small) */
function live(render: () => void): void {
  const on = () => render();
  document.addEventListener('dbc-event', on);
  state.cleanup.push(() => document.removeEventListener('dbc-event', on));
}

// --- sign in ------------------------------------------------------------------------------------------------------
async function nodes(): Promise<Array<{ node_id: string; name: string }>> {
  const r = await rawPost<{ mining_nodes: Array<{ node_id: string; name: string }> }>('mining_nodes', { peer_nodes_list: [], additional: {} });
  return r.errcode === 0 ? r.message.mining_nodes : [];
}

async function signInView(): Promise<void> {
  const root = $app();
  root.replaceChildren();
  const list = await nodes();
  const nodeSel = h('select', { id: 'node' }, ...list.map((n) => h('option', { value: n.node_id }, `${n.name} · ${n.node_id.slice(0, 12)}…`)));
  const err = h('p', { class: 'error', id: 'signin-error' });
  const done = (auth: Auth, nodeId: string) => {
    sessionStorage.setItem('dbc-auth', JSON.stringify({ auth, nodeId }));
    start(new Api(nodeId, auth));
  };
  const fail = (e: unknown) => (err.textContent = (e as Error).message);
  const cards: HTMLElement[] = [];
  if (await devnetAvailable()) {
    cards.push(
      h(
        'section',
        { class: 'card signin' },
        h('h3', {}, 'Demo renter'),
        h('p', { class: 'muted' }, 'dbc up rents this machine to a demo wallet; its key is offered to browsers on this host only.'),
        h(
          'button',
          {
            id: 'signin-devnet',
            class: 'primary',
            onclick: () => void devnetSignIn().then((r) => (r ? done(r.auth, r.nodeId) : fail(new Error('not offered'))), fail),
          },
          'Sign in as the demo renter',
        ),
      ),
    );
  }
  cards.push(
    h(
      'section',
      { class: 'card signin' },
      h('h3', {}, 'polkadot{.js} extension'),
      h('p', { class: 'muted' }, 'Sign twice (a nonce, then the session id) with the wallet that rents the machine.'),
      h(
        'button',
        {
          id: 'signin-extension',
          onclick: () =>
            void extensionAccounts()
              .then((accs) => {
                if (accs.length === 0) throw new Error('the extension has no accounts');
                return extensionSignIn((nodeSel as HTMLSelectElement).value, accs[0].address);
              })
              .then((a) => done(a, (nodeSel as HTMLSelectElement).value), fail),
        },
        'Connect the extension',
      ),
    ),
  );
  const wallet = h('input', { id: 'wallet', placeholder: 'wallet (SS58)' }) as HTMLInputElement;
  const sid = h('input', { id: 'session-id', placeholder: 'session_id' }) as HTMLInputElement;
  const sig = h('input', { id: 'session-sign', placeholder: 'session_id_sign (0x…)' }) as HTMLInputElement;
  cards.push(
    h(
      'section',
      { class: 'card signin' },
      h('h3', {}, 'Session'),
      h('p', { class: 'muted' }, 'A session id and its signature (dbc sign --seed … --session-id …), e.g. delegated to you.'),
      wallet,
      sid,
      sig,
      h(
        'button',
        {
          id: 'signin-session',
          onclick: () => {
            const nodeId = (nodeSel as HTMLSelectElement).value;
            const auth: Auth = { wallet: wallet.value.trim(), session_id: sid.value.trim(), session_id_sign: sig.value.trim(), how: 'session' };
            void new Api(nodeId, auth).call('tasks').then(() => done(auth, nodeId), fail);
          },
        },
        'Use this session',
      ),
    ),
  );
  root.append(
    h('div', { class: 'hero' }, h('h1', {}, 'Rent a GPU machine. Run your VMs.'), h('p', { class: 'muted' }, 'Sign in to the DBC node you rent.')),
    h('label', { class: 'node-pick' }, 'GPU node ', nodeSel),
    h('div', { class: 'grid3' }, ...cards),
    err,
  );
}

// --- layout and routing -------------------------------------------------------------------------------------------
const NAV: Array<[string, string]> = [
  ['#/vms', 'Virtual machines'],
  ['#/create', 'Create VM'],
  ['#/machine', 'Machine'],
  ['#/lans', 'Private LANs'],
  ['#/ops', 'Operations'],
];

function start(api: Api): void {
  state.api = api;
  document.body.classList.add('signed-in');
  const who = document.getElementById('who')!;
  who.replaceChildren(
    h('span', { class: 'muted' }, `${api.auth.wallet.slice(0, 6)}…${api.auth.wallet.slice(-4)}`),
    ' ',
    h('span', { class: 'dot', title: 'live events' }),
    h('button', { class: 'link', onclick: () => (sessionStorage.removeItem('dbc-auth'), location.reload()) }, 'Sign out'),
  );
  document.getElementById('nav')!.replaceChildren(...NAV.map(([href, text]) => h('a', { href }, text)));
  void loadTasks().then(() => route());
  void openEvents();
  window.onhashchange = () => route();
}

function route(): void {
  for (const c of state.cleanup.splice(0)) c();
  const hash = location.hash || '#/vms';
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', hash.startsWith(a.getAttribute('href')!));
  const m = /^#\/vm\/([A-Za-z0-9]+)/.exec(hash);
  if (m) return void vmView(m[1]);
  if (hash.startsWith('#/create')) return void createView();
  if (hash.startsWith('#/machine')) return void machineView();
  if (hash.startsWith('#/lans')) return void lansView();
  if (hash.startsWith('#/ops')) return void opsView();
  vmsView();
}

// --- views --------------------------------------------------------------------------------------------------------
function vmsView(): void {
  const render = () => {
    const rows = [...state.tasks.values()].sort((a, b) => (b.create_time ?? '').localeCompare(a.create_time ?? ''));
    $app().replaceChildren(
      h('div', { class: 'title' }, h('h2', {}, 'Virtual machines'), h('a', { class: 'button primary', href: '#/create' }, 'Create VM')),
      rows.length === 0
        ? h('div', { class: 'card empty' }, 'No VMs yet. ', h('a', { href: '#/create' }, 'Create one'), '.')
        : h(
            'table',
            { class: 'table', id: 'vm-table' },
            h('thead', {}, h('tr', {}, ...['VM', 'Status', 'Image', 'CPU / RAM / data', 'SSH', 'Created'].map((t) => h('th', {}, t)))),
            h(
              'tbody',
              {},
              ...rows.map((t) =>
                h(
                  'tr',
                  { 'data-task': t.task_id, onclick: () => (location.hash = `#/vm/${t.task_id}`) },
                  h('td', {}, h('a', { href: `#/vm/${t.task_id}` }, t.task_id), t.desc ? h('div', { class: 'muted small' }, t.desc) : null),
                  h('td', {}, pill(t.status ?? '')),
                  h('td', {}, t.image_name ?? ''),
                  h('td', {}, `${t.cpu_cores ?? '–'} vCPU · ${t.mem_size ?? '–'} · ${t.disk_data ?? '–'}`),
                  h('td', { class: 'mono' }, t.ssh_port ? `${t.ssh_ip}:${t.ssh_port}` : t.rdp_port ? `rdp ${t.ssh_ip}:${t.rdp_port}` : ''),
                  h('td', { class: 'muted' }, t.create_time ?? ''),
                ),
              ),
            ),
          ),
    );
  };
  render();
  live(render);
}

async function machineView(): Promise<void> {
  $app().replaceChildren(h('h2', {}, 'Machine'), h('p', { class: 'muted' }, 'Loading…'));
  const r = await state.api!.post('mining_nodes');
  const info = r.message as Record<string, any>;
  const kv = (k: string, v: unknown) =>
    h('div', { class: 'kv' }, h('span', { class: 'k' }, k), h('span', { class: 'v' }, typeof v === 'object' ? JSON.stringify(v) : String(v ?? '')));
  const gpus = Array.isArray(info?.gpu?.gpus) ? info.gpu.gpus : [];
  const data = Array.isArray(info?.disk_data) ? info.disk_data[0] : info?.disk_data;
  $app().replaceChildren(
    h('h2', {}, 'Machine'),
    r.errcode !== 0
      ? h('p', { class: 'error' }, String(r.message))
      : h(
          'div',
          { class: 'grid2' },
          h(
            'section',
            { class: 'card' },
            h('h3', {}, 'Host'),
            kv('OS', info.os),
            kv('CPU', `${info.cpu?.type ?? ''} · ${info.cpu?.cores ?? ''} cores`),
            kv('Memory', `${info.mem?.size ?? ''} (free ${info.mem?.free ?? ''})`),
            kv('Data disk', `${data?.size ?? ''} (free ${data?.free ?? ''})`),
            kv('Network', info.network_mode ?? ''),
            kv('Version', info.version),
          ),
          h(
            'section',
            { class: 'card' },
            h('h3', {}, `GPUs (${info.gpu?.gpu_count ?? gpus.length})`),
            ...(gpus.length
              ? gpus.map((g: any) => kv(`GPU ${g.index ?? ''}`, `${g.name ?? ''} · ${g.mem ?? ''}`))
              : [h('p', { class: 'muted' }, 'none on this host')]),
          ),
          h('section', { class: 'card wide' }, h('h3', {}, 'Images'), h('p', { class: 'mono' }, imageNames(info).join('  ') || 'none')),
        ),
  );
}

async function createView(): Promise<void> {
  const api = state.api!;
  const [info, lans] = await Promise.all([api.post('mining_nodes'), api.post<{ networks?: any[] }>('lan')]);
  const images = imageNames(info.message);
  const nets = lanList(lans.message);
  const port = (min: number, span: number) => String(min + Math.floor(Math.random() * span));
  const field = (label: string, input: HTMLElement, hint = '') =>
    h('label', { class: 'field' }, h('span', {}, label), input, hint ? h('small', { class: 'muted' }, hint) : null);
  const image = h('select', { name: 'image_name', id: 'image_name' }, ...images.map((i) => h('option', { value: i }, i))) as HTMLSelectElement;
  const inputs = {
    ssh_port: h('input', { name: 'ssh_port', value: port(20000, 20000), inputmode: 'numeric' }) as HTMLInputElement,
    vnc_port: h('input', { name: 'vnc_port', value: port(5901, 900), inputmode: 'numeric' }) as HTMLInputElement,
    cpu_cores: h('input', { name: 'cpu_cores', value: '1', type: 'number', min: 1 }) as HTMLInputElement,
    mem_size: h('input', { name: 'mem_size', value: '1', type: 'number', min: 1 }) as HTMLInputElement,
    disk_size: h('input', { name: 'disk_size', value: '1', type: 'number', min: 1 }) as HTMLInputElement,
    desc: h('input', { name: 'desc', placeholder: 'what it is for' }) as HTMLInputElement,
  };
  const bios = h('select', { name: 'bios_mode' }, h('option', { value: 'legacy' }, 'legacy BIOS'), h('option', { value: 'uefi' }, 'UEFI')) as HTMLSelectElement;
  const lan = h(
    'select',
    { name: 'network_name' },
    h('option', { value: '' }, 'none'),
    ...nets.map((n) => h('option', { value: n.network_name ?? n.name }, n.network_name ?? n.name)),
  ) as HTMLSelectElement;
  const out = h('div', { id: 'create-result' });
  const form = h(
    'form',
    {
      class: 'card form',
      id: 'create-form',
      onsubmit: (e: Event) => {
        e.preventDefault();
        const additional: Record<string, unknown> = { image_name: image.value, bios_mode: bios.value };
        for (const [k, el] of Object.entries(inputs)) if (el.value !== '') additional[k] = el.value;
        if (lan.value) additional.network_name = lan.value;
        out.replaceChildren(h('p', { class: 'muted' }, 'Creating…'));
        void api.post<{ task_id: string }>('tasks/start', additional).then((r) => {
          if (r.errcode !== 0) return void out.replaceChildren(h('p', { class: 'error' }, String(r.message)));
          state.tasks.set(r.message.task_id, { ...(r.message as any), image_name: image.value });
          location.hash = `#/vm/${r.message.task_id}`;
        });
      },
    },
    h(
      'div',
      { class: 'grid2' },
      field('Image', image),
      field('Boot', bios),
      field('SSH port (host)', inputs.ssh_port, 'forwarded to the guest’s 22'),
      field('VNC port (host)', inputs.vnc_port, '5900–65535'),
      field('vCPUs', inputs.cpu_cores),
      field('Memory, GiB', inputs.mem_size),
      field('Data disk, GiB', inputs.disk_size, 'mounted at /data'),
      field('Private LAN', lan),
      field('Description', inputs.desc),
    ),
    h('div', { class: 'actions' }, h('button', { class: 'primary', type: 'submit', id: 'create-submit' }, 'Create VM')),
  );
  $app().replaceChildren(h('h2', {}, 'Create a VM'), form, out);
}

function vmView(id: string): void {
  const api = state.api!;
  let tab = sessionStorage.getItem('dbc-tab') || 'console';
  let term: Terminal | undefined;
  let termWs: WebSocket | undefined;
  let rfb: RFB | undefined;
  let retryPane = false;
  const stopConsoles = () => {
    termWs?.close();
    term?.dispose();
    rfb?.disconnect();
    term = undefined;
    termWs = undefined;
    rfb = undefined;
  };
  state.cleanup.push(stopConsoles);
  const power = (verb: string, label: string, query = '') =>
    h('button', { 'data-action': verb + query, onclick: () => void act(label, () => api.call(`tasks/${verb}/${id}${query}`)) }, label);
  const wsUrl = (path: string) => `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}`;

  const openConsole = async (box: HTMLElement) => {
    const t = await api.post<{ url: string }>(`tasks/console/${id}`);
    if (t.errcode !== 0) {
      // e.g. `task is not running, no console` while it boots: opened again when the status changes
      retryPane = true;
      return void box.replaceChildren(h('p', { class: 'error' }, String(t.message)));
    }
    term = new Terminal({ convertEol: false, cursorBlink: true, fontSize: 14, theme: { background: '#0b1020' }, rows: 28, cols: 100 });
    term.open(box);
    const ws = new WebSocket(wsUrl(t.message.url));
    ws.binaryType = 'arraybuffer';
    termWs = ws;
    const enc = new TextEncoder();
    ws.onmessage = (m) => term?.write(new Uint8Array(m.data as ArrayBuffer));
    ws.onclose = () => term?.write('\r\n\x1b[2m[console closed]\x1b[0m\r\n');
    term.onData((s) => ws.readyState === ws.OPEN && ws.send(enc.encode(s)));
    term.onResize(({ cols, rows }) => ws.readyState === ws.OPEN && ws.send(JSON.stringify({ type: 'resize', cols, rows })));
    (window as any).dbcTerm = term;
    term.focus();
  };
  const openScreen = async (box: HTMLElement) => {
    const t = await api.post<{ url: string }>(`tasks/vnc/${id}`);
    if (t.errcode !== 0) {
      // e.g. `task is not running, no console` while it boots: opened again when the status changes
      retryPane = true;
      return void box.replaceChildren(h('p', { class: 'error' }, String(t.message)));
    }
    rfb = new RFB(box, wsUrl(t.message.url), { wsProtocols: ['binary'] });
    rfb.scaleViewport = true;
    rfb.addEventListener('connect', () => (box.dataset.connected = 'true'));
    rfb.addEventListener('disconnect', () => (box.dataset.connected = 'false'));
  };

  const render = (full: boolean) => {
    const t = state.tasks.get(id);
    if (!t) {
      $app().replaceChildren(h('p', { class: 'muted' }, 'This VM does not exist (any more). '), h('a', { href: '#/vms' }, 'Back to the list'));
      stopConsoles();
      return;
    }
    const head = h(
      'div',
      { class: 'title', id: 'vm-head' },
      h('h2', {}, t.task_id, ' ', pill(t.status ?? '')),
      h(
        'div',
        { class: 'buttons' },
        power('start', 'Start'),
        power('shutdown', 'Shut down'),
        power('poweroff', 'Power off'),
        power('restart', 'Restart'),
        power('restart', 'Force restart', '?force_reboot=true'),
        h(
          'button',
          {
            class: 'danger',
            'data-action': 'delete',
            onclick: () => confirm(`Delete ${id} and its disks?`) && void act('Deleted', () => api.call(`tasks/delete/${id}`)),
          },
          'Delete',
        ),
      ),
    );
    const ssh = t.ssh_port ? `ssh -p ${t.ssh_port} ${t.user_name ?? 'dbc'}@${t.ssh_ip}` : '';
    const pw = h('span', { class: 'mono secret', id: 'vm-password', 'data-secret': t.login_password ?? '' }, '••••••••');
    const info = h(
      'section',
      { class: 'card info' },
      h('div', { class: 'kv' }, h('span', { class: 'k' }, 'Login'), h('span', { class: 'v mono', id: 'vm-ssh' }, ssh)),
      h(
        'div',
        { class: 'kv' },
        h('span', { class: 'k' }, 'Password'),
        h('span', { class: 'v' }, pw, ' ', h('button', { class: 'link', onclick: () => (pw.textContent = pw.dataset.secret ?? '') }, 'show')),
      ),
      h('div', { class: 'kv' }, h('span', { class: 'k' }, 'Image · boot'), h('span', { class: 'v' }, `${t.image_name ?? ''} · ${t.bios_mode ?? ''}`)),
      h(
        'div',
        { class: 'kv' },
        h('span', { class: 'k' }, 'Size'),
        h('span', { class: 'v' }, `${t.cpu_cores ?? ''} vCPU · ${t.mem_size ?? ''} · data ${t.disk_data ?? ''}`),
      ),
      t.local_address
        ? h('div', { class: 'kv' }, h('span', { class: 'k' }, 'LAN'), h('span', { class: 'v mono' }, `${t.network_name} ${t.local_address}`))
        : null,
      h(
        'div',
        { class: 'kv' },
        h('span', { class: 'k' }, 'Guest'),
        h('span', { class: 'v' }, t.guest_ready ? 'reachable' : t.status === 'running' ? 'running, not answering yet' : '—'),
      ),
    );
    const ops = [...state.ops.values()].filter((o) => o.task_id === id).slice(-4);
    const opsBox = h(
      'section',
      { class: 'card ops', id: 'vm-ops' },
      h('h3', {}, 'Operations'),
      ...(ops.length ? ops.map(progressBar) : [h('p', { class: 'muted' }, 'none yet')]),
    );
    if (!full) {
      document.getElementById('vm-head')?.replaceWith(head);
      document.querySelector('section.info')?.replaceWith(info);
      document.getElementById('vm-ops')?.replaceWith(opsBox);
      return;
    }
    stopConsoles();
    const tabs = ['console', 'screen', 'disks', 'snapshots'];
    const pane = h('div', { class: 'pane', id: `pane-${tab}` });
    const tabBar = h(
      'div',
      { class: 'tabs' },
      ...tabs.map((x) =>
        h(
          'button',
          { class: x === tab ? 'tab active' : 'tab', 'data-tab': x, onclick: () => ((tab = x), sessionStorage.setItem('dbc-tab', x), render(true)) },
          x[0].toUpperCase() + x.slice(1),
        ),
      ),
    );
    $app().replaceChildren(head, h('div', { class: 'grid2 top' }, info, opsBox), tabBar, pane);
    if (tab === 'console') void openConsole(h('div', { class: 'terminal', id: 'terminal' }).also(pane));
    else if (tab === 'screen') void openScreen(h('div', { class: 'screen', id: 'screen' }).also(pane));
    else if (tab === 'disks') void disksPane(pane, id);
    else void snapshotsPane(pane, id);
  };
  render(true);
  void refreshTask(id);
  live(() => {
    if (retryPane && state.tasks.get(id)?.status === 'running') {
      retryPane = false;
      render(true);
    } else render(false);
  });
}

async function disksPane(pane: HTMLElement, id: string): Promise<void> {
  const api = state.api!;
  const r = await api.post<any[]>(`disk/list/${id}`);
  const disks: any[] = Array.isArray(r.message) ? r.message : [];
  const size = h('input', { type: 'number', min: 1, value: '1', id: 'disk-size' }) as HTMLInputElement;
  pane.replaceChildren(
    h(
      'table',
      { class: 'table' },
      h('thead', {}, h('tr', {}, ...['Disk', 'Size', 'File', ''].map((t) => h('th', {}, t)))),
      h(
        'tbody',
        {},
        ...disks.map((d) =>
          h(
            'tr',
            {},
            h('td', { class: 'mono' }, d.name),
            h('td', {}, d.size ?? ''),
            h('td', { class: 'mono muted' }, d.file ?? ''),
            h(
              'td',
              {},
              d.name === 'vda'
                ? ''
                : h(
                    'button',
                    { class: 'link', onclick: () => void act(`Disk ${d.name} deleted`, () => api.call(`disk/delete/${id}`, { disk_name: d.name })) },
                    'delete',
                  ),
            ),
          ),
        ),
      ),
    ),
    h(
      'div',
      { class: 'inline' },
      'Add a disk of ',
      size,
      ' GiB ',
      h('button', { onclick: () => void act('Disk added', () => api.call(`disk/add/${id}`, { size: Number(size.value) })) }, 'Add'),
    ),
  );
}

async function snapshotsPane(pane: HTMLElement, id: string): Promise<void> {
  const api = state.api!;
  const r = await api.post<any>(`snapshot/list/${id}`);
  const snaps: any[] = Array.isArray(r.message) ? r.message : (r.message?.snapshots ?? []);
  const name = h('input', { placeholder: 'snapshot name', id: 'snap-name' }) as HTMLInputElement;
  pane.replaceChildren(
    snaps.length
      ? h(
          'table',
          { class: 'table' },
          h(
            'tbody',
            {},
            ...snaps.map((s) =>
              h(
                'tr',
                {},
                h('td', { class: 'mono' }, s.snapshot_name ?? s.name ?? ''),
                h('td', {}, s.status ?? ''),
                h('td', { class: 'muted' }, s.create_time ?? ''),
                h(
                  'td',
                  {},
                  h(
                    'button',
                    { class: 'link', onclick: () => void act('Snapshot deleted', () => api.call(`snapshot/delete/${id}/${s.snapshot_name ?? s.name}`)) },
                    'delete',
                  ),
                ),
              ),
            ),
          ),
        )
      : h('p', { class: 'muted' }, 'No snapshots.'),
    h(
      'div',
      { class: 'inline' },
      name,
      ' ',
      h(
        'button',
        { onclick: () => void act('Snapshot started', () => api.call(`snapshot/create/${id}`, { snapshot_name: name.value, description: '' })) },
        'Create snapshot',
      ),
    ),
  );
}

async function lansView(): Promise<void> {
  const api = state.api!;
  const r = await api.post('lan');
  const nets = lanList(r.message);
  const name = h('input', { placeholder: 'name, e.g. train1', id: 'lan-name' }) as HTMLInputElement;
  const cidr = h('input', { placeholder: '192.168.66.0/24', id: 'lan-cidr' }) as HTMLInputElement;
  $app().replaceChildren(
    h('h2', {}, 'Private LANs'),
    nets.length
      ? h(
          'table',
          { class: 'table' },
          h('thead', {}, h('tr', {}, ...['Name', 'CIDR', 'Members', ''].map((t) => h('th', {}, t)))),
          h(
            'tbody',
            {},
            ...nets.map((n) =>
              h(
                'tr',
                {},
                h('td', { class: 'mono' }, n.network_name ?? n.name),
                h('td', { class: 'mono' }, n.ip_cidr ?? ''),
                h('td', {}, String(Array.isArray(n.members) ? n.members.length : '')),
                h(
                  'td',
                  {},
                  h(
                    'button',
                    { class: 'link', onclick: () => void act('LAN deleted', () => api.call(`lan/delete/${n.network_name ?? n.name}`)).then(() => lansView()) },
                    'delete',
                  ),
                ),
              ),
            ),
          ),
        )
      : h('p', { class: 'muted' }, 'No LANs yet.'),
    h(
      'div',
      { class: 'card inline' },
      name,
      ' ',
      cidr,
      ' ',
      h(
        'button',
        {
          class: 'primary',
          onclick: () => void act('LAN created', () => api.call('lan/create', { network_name: name.value, ip_cidr: cidr.value })).then(() => lansView()),
        },
        'Create LAN',
      ),
    ),
  );
}

async function opsView(): Promise<void> {
  const r = await state.api!.post<Op[]>('operations');
  if (r.errcode === 0 && Array.isArray(r.message)) for (const o of r.message) if (!state.ops.has(o.operation_id)) state.ops.set(o.operation_id, o);
  const render = () => {
    const ops = [...state.ops.values()].sort((a, b) => (b.updated_at ?? '').localeCompare(a.updated_at ?? ''));
    $app().replaceChildren(
      h('h2', {}, 'Operations'),
      h('div', { class: 'ops-list', id: 'ops-list' }, ...(ops.length ? ops.map(progressBar) : [h('p', { class: 'muted' }, 'None.')])),
    );
  };
  render();
  live(render);
}

// a tiny helper: append el to parent and return el
declare global {
  interface HTMLElement {
    also(parent: HTMLElement): HTMLElement;
  }
}
HTMLElement.prototype.also = function (this: HTMLElement, parent: HTMLElement) {
  parent.append(this);
  return this;
};

// --- boot ---------------------------------------------------------------------------------------------------------
const saved = sessionStorage.getItem('dbc-auth');
if (saved) {
  const { auth, nodeId } = JSON.parse(saved) as { auth: Auth; nodeId: string };
  start(new Api(nodeId, auth));
} else {
  void signInView();
}
