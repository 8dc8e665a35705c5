// URI routing of the client gateway, as the original rest_api_service dispatch (original §2.2, §2.6):
// raw string prefixes checked in order, the rest split by split_path, query by split_path_into_kvs.
// Pure: no I/O, throws DbcError for every refusal.
import { ClientErrors } from '../protocol/errors.js';
import type { RouteId } from '../protocol/types.js';

export const REST_API_URI = '/api/v1';

export type Resolved =
  | { kind: 'version' }
  | { kind: 'openapi' }
  | { kind: 'node'; route: RouteId; params: Record<string, string>; query: Record<string, string> }
  | { kind: 'local'; route: 'peers.active' | 'peers.global' | 'images.servers' }
  /** GET routes the gateway serves from a node channel (api/streams.ts): SSE, or a websocket upgrade */
  | { kind: 'stream'; stream: 'events' | 'events.ws' | 'console.ws' | 'vnc.ws'; query: Record<string, string> };

type Family = (method: string, uri: string, path: string) => Resolved;

const TASK_VERBS: Record<string, RouteId> = {
  start: 'tasks.start',
  shutdown: 'tasks.shutdown',
  poweroff: 'tasks.poweroff',
  stop: 'tasks.stop',
  restart: 'tasks.restart',
  reset: 'tasks.reset',
  delete: 'tasks.delete',
  logs: 'tasks.logs',
  modify: 'tasks.modify',
  passwd: 'tasks.passwd',
  console: 'tasks.console',
  vnc: 'tasks.vnc',
};

/** util::split: interior empty items kept, a trailing empty item dropped. */
function splitKeepInner(text: string, delim: string): string[] {
  const items = text.split(delim);
  if (items[items.length - 1] === '') items.pop();
  return items;
}

/** util::split_path: strip `?query`, drop one leading `/`, split on `/`. */
export function splitPath(path: string): string[] {
  const q = path.indexOf('?');
  let p = q >= 0 ? path.slice(0, q) : path;
  if (p.startsWith('/')) p = p.slice(1);
  return splitKeepInner(p, '/');
}

/** util::split_path_into_kvs: `&` then `=`, items without exactly two parts ignored, no URL-decoding. */
export function splitQuery(uri: string): Record<string, string> {
  const query: Record<string, string> = {};
  const q = uri.indexOf('?');
  if (q < 0) return query;
  for (const item of splitKeepInner(uri.slice(q + 1), '&')) {
    const kv = splitKeepInner(item, '=');
    // '__proto__' would silently not be stored on a plain object; no route reads it
    if (kv.length === 2 && kv[0] !== '__proto__') query[kv[0]!] = kv[1]!;
  }
  return query;
}

function requirePost(method: string): void {
  if (method !== 'POST') throw ClientErrors.onlyPost();
}

const node = (route: RouteId, params: Record<string, string>, uri: string): Resolved => ({
  kind: 'node',
  route,
  params,
  query: splitQuery(uri),
});

// /tasks (RAS rest_task): the segment dispatch runs before each handler's POST check.
const tasks: Family = (method, uri, path) => {
  const segs = splitPath(path);
  if (segs.length > 2) throw ClientErrors.invalidRequestsUri();
  if (segs.length === 2) {
    const route = TASK_VERBS[segs[0]!];
    if (route === undefined) throw ClientErrors.unhandled();
    requirePost(method);
    if (segs[1] === '') throw ClientErrors.taskIdEmpty();
    return node(route, { task_id: segs[1]! }, uri);
  }
  requirePost(method);
  if (segs.length === 1 && segs[0] === 'start') return node('tasks.create', {}, uri);
  // an empty single segment (`/tasks//`) is the list, as the original sent task_id ""
  if (segs.length === 1 && segs[0] !== '') return node('tasks.detail', { task_id: segs[0]! }, uri);
  return node('tasks.list', {}, uri);
};

const miningNodes: Family = (method, uri, path) => {
  requirePost(method);
  const segs = splitPath(path);
  if (segs.length === 0) return node('mining_nodes.info', {}, uri);
  if (segs.length === 1 && segs[0] === 'session_id') return node('mining_nodes.session_id', {}, uri);
  if (segs.length === 1 && segs[0] === 'free_memory') return node('mining_nodes.free_memory', {}, uri);
  throw ClientErrors.uriUsage('/mining_nodes or /mining_nodes/session_id or /mining_nodes/free_memory');
};

const peers: Family = (method, _uri, path) => {
  requirePost(method);
  const segs = splitPath(path);
  if (segs.length !== 1) throw ClientErrors.uriUsage('/peers/active or /peers/global');
  if (segs[0] === 'active') return { kind: 'local', route: 'peers.active' };
  if (segs[0] === 'global') return { kind: 'local', route: 'peers.global' };
  throw ClientErrors.peersOption();
};

const operations: Family = (method, uri, path) => {
  requirePost(method);
  const segs = splitPath(path);
  if (segs.length === 0) return node('operations.list', {}, uri);
  if (segs.length === 2 && segs[0] !== '' && segs[1] === 'wait') return node('operations.wait', { operation_id: segs[0]! }, uri);
  if (segs.length !== 1 || segs[0] === '') {
    throw ClientErrors.uriUsage('/operations/<operation_id> or /operations/<operation_id>/wait');
  }
  return node('operations.get', { operation_id: segs[0]! }, uri);
};

// /images (original §2.6 rows 15-23): no segment = the list, one segment = the action; images/servers is local.
const IMAGE_ACTIONS: Record<string, RouteId> = {
  download: 'images.download',
  downloadprogress: 'images.download_progress',
  download_stop: 'images.download_stop',
  upload: 'images.upload',
  uploadprogress: 'images.upload_progress',
  upload_stop: 'images.upload_stop',
  delete: 'images.delete',
};

const images: Family = (method, uri, path) => {
  requirePost(method);
  const segs = splitPath(path);
  if (segs.length === 0) return node('images.list', {}, uri);
  if (segs.length === 1 && segs[0] === 'servers') return { kind: 'local', route: 'images.servers' };
  const route = segs.length === 1 ? IMAGE_ACTIONS[segs[0]!] : undefined;
  if (route === undefined) {
    throw ClientErrors.uriUsage('/images or /images/<servers|download|downloadprogress|download_stop|upload|uploadprogress|upload_stop|delete>');
  }
  return node(route, {}, uri);
};

// /disk/<list|resize|add|delete>/<task_id>: exactly two segments. The original's usage texts for add and delete
// named /disk/resize (§13.5.3); ours name the route that was called.
const DISK_VERBS: Record<string, RouteId> = { list: 'disk.list', resize: 'disk.resize', add: 'disk.add', delete: 'disk.delete' };

const disk: Family = (method, uri, path) => {
  requirePost(method);
  const segs = splitPath(path);
  const route = DISK_VERBS[segs[0] ?? ''];
  if (segs.length !== 2 || route === undefined) {
    throw ClientErrors.uriUsage(`/disk/${route ? segs[0] : '<list|resize|add|delete>'}/<task_id>`);
  }
  if (segs[1] === '') throw ClientErrors.taskIdEmpty();
  return node(route, { task_id: segs[1]! }, uri);
};

// /snapshot: list/<task_id>[/<name>], create/<task_id>, delete/<task_id>/<name>; seg0 not one of them -> `invalid uri`
const snapshot: Family = (method, uri, path) => {
  requirePost(method);
  const segs = splitPath(path);
  const verb = segs[0] ?? '';
  if (segs.length < 1 || segs.length > 3 || !['create', 'delete', 'list'].includes(verb)) throw ClientErrors.snapshotVerbInvalid();
  const usage = {
    list: '/snapshot/list/<task_id> or /snapshot/list/<task_id>/<snapshot_name>',
    create: '/snapshot/create/<task_id>',
    delete: '/snapshot/delete/<task_id>/<snapshot_name>',
  }[verb as 'list' | 'create' | 'delete'];
  const want = verb === 'list' ? [2, 3] : verb === 'create' ? [2] : [3];
  if (!want.includes(segs.length) || segs.slice(1).some((x) => x === '')) throw ClientErrors.uriUsage(usage);
  const params: Record<string, string> = { task_id: segs[1]! };
  if (segs.length === 3) params.snapshot_name = segs[2]!;
  return node(`snapshot.${verb}` as RouteId, params, uri);
};

// /lan: list; /lan/create; /lan/delete/<name>; /lan/<name> (the literal `create` first, original §2.6 rows 39-41)
const lan: Family = (method, uri, path) => {
  requirePost(method);
  const segs = splitPath(path);
  if (segs.length === 0) return node('lan.list', {}, uri);
  if (segs.length === 1 && segs[0] === 'create') return node('lan.create', {}, uri);
  if (segs[0] === 'delete') {
    if (segs.length !== 2 || segs[1] === '') throw ClientErrors.uriUsage('/lan/delete/<network_name>');
    return node('lan.delete', { network_name: segs[1]! }, uri);
  }
  if (segs.length === 1 && segs[0] !== '') return node('lan.detail', { network_name: segs[0]! }, uri);
  throw ClientErrors.uriUsage('/lan or /lan/<network_name> or /lan/create or /lan/delete/<network_name>');
};

// /events (ours, docs/events.md): POST /events/ticket; GET /events (SSE) and GET /events/ws (websocket) with ?ticket=
const events: Family = (method, uri, path) => {
  const segs = splitPath(path);
  if (segs.length === 1 && segs[0] === 'ticket') {
    requirePost(method);
    return node('events.ticket', {}, uri);
  }
  if (method !== 'GET') throw ClientErrors.uriUsage('POST /events/ticket, then GET /events?ticket=<ticket> or GET /events/ws?ticket=<ticket>');
  if (segs.length === 0) return { kind: 'stream', stream: 'events', query: splitQuery(uri) };
  if (segs.length === 1 && segs[0] === 'ws') return { kind: 'stream', stream: 'events.ws', query: splitQuery(uri) };
  throw ClientErrors.uriUsage('GET /events?ticket=<ticket> or GET /events/ws?ticket=<ticket>');
};

// /console and /vnc (ours, docs/console.md): websocket upgrades with the ticket tasks/console|vnc/<id> gave
const consoleWs: Family = (method, uri, path) => {
  if (method !== 'GET' || splitPath(path).length !== 0) throw ClientErrors.uriUsage('GET /console?ticket=<ticket> (a websocket)');
  return { kind: 'stream', stream: 'console.ws', query: splitQuery(uri) };
};
const vncWs: Family = (method, uri, path) => {
  if (method !== 'GET' || splitPath(path).length !== 0) throw ClientErrors.uriUsage('GET /vnc?ticket=<ticket> (a websocket)');
  return { kind: 'stream', stream: 'vnc.ws', query: splitQuery(uri) };
};

// The original's bodies of /stat and /config are commented out: the request is never answered -> 500.
const unhandled: Family = () => {
  throw ClientErrors.unhandled();
};

// Original order (RAS init); families not built yet are absent and fall through to 404.
const PREFIXES: ReadonlyArray<[string, Family]> = [
  ['/tasks', tasks],
  ['/images', images],
  ['/snapshot', snapshot],
  ['/disk', disk],
  ['/mining_nodes', miningNodes],
  ['/peers', peers],
  ['/stat', unhandled],
  ['/config', unhandled],
  ['/operations', operations],
  ['/lan', lan],
  ['/events', events],
  ['/console', consoleWs],
  ['/vnc', vncWs],
].map(([prefix, family]) => [REST_API_URI + (prefix as string), family as Family]);

const VERSION_URIS = new Set([REST_API_URI + '/', REST_API_URI]);
const OPENAPI_URI = REST_API_URI + '/openapi.json';

export function resolve(method: string, rawUrl: string): Resolved {
  if (!rawUrl.startsWith(REST_API_URI)) throw ClientErrors.invalidUri(rawUrl);
  if (VERSION_URIS.has(rawUrl)) return { kind: 'version' };
  if (rawUrl === OPENAPI_URI) {
    if (method !== 'GET' && method !== 'POST') throw ClientErrors.onlyPost();
    return { kind: 'openapi' };
  }
  for (const [prefix, family] of PREFIXES) {
    if (rawUrl.startsWith(prefix)) return family(method, rawUrl, rawUrl.slice(prefix.length));
  }
  throw ClientErrors.notSupportUri(rawUrl);
}
