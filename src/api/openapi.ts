// OpenAPI 3.0 document of the client gateway, generated from ROUTES and the TypeBox schemas the GPU node
// validates with, so the document cannot drift from what is enforced.
import type { TSchema } from '@sinclair/typebox';
import { ROUTES, type RouteSpec } from '../protocol/routes.js';
import { DbcBodySchema, ErrorEnvelope, MultisigAccountsSchema } from '../protocol/schemas.js';
import { DBC_NODE_VERSION, DBC_VERSION } from '../protocol/types.js';

type Doc = Record<string, unknown>;

/** TypeBox schemas are JSON Schema plus symbol keys; a JSON round trip keeps exactly the JSON Schema part. */
const plain = (schema: TSchema): Doc => JSON.parse(JSON.stringify(schema)) as Doc;

const AUTH_TEXT = {
  none: 'No credential needed.',
  session: 'Credential: the session pair (`session_id` + `session_id_sign`), or `wallet` + `nonce` + `sign`, or `multisig_accounts`.',
  wallet: 'Credential: `wallet` + `nonce` + `sign`, or `multisig_accounts` (a session pair is not accepted).',
} as const;

const QUERY_PARAMS: Partial<Record<RouteSpec['id'], Doc[]>> = {
  'tasks.logs': [
    {
      name: 'flag',
      in: 'query',
      required: false,
      schema: { type: 'string', enum: ['head', 'tail'] },
      description: 'default tail; when absent line_num is ignored (100)',
    },
    {
      name: 'line_num',
      in: 'query',
      required: false,
      schema: { type: 'string' },
      description: 'lines, 1..100 (default 100; above 100 becomes 99, as the original)',
    },
  ],
  'tasks.restart': [
    { name: 'force_reboot', in: 'query', required: false, schema: { type: 'string' }, description: '`true` or a non-zero number: hard restart' },
  ],
};

const errorResponse = (description: string) => ({
  description,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorEnvelope' } } },
});

function operation(route: RouteSpec): Doc {
  const body = plain(DbcBodySchema);
  (body.properties as Doc).additional = plain(route.additional);
  const pathParams = [...route.path.matchAll(/\{(\w+)\}/g)].map((m) => ({
    name: m[1],
    in: 'path',
    required: true,
    schema: { type: 'string' },
    description: 'passed to the GPU node unchanged; the node validates it',
  }));
  return {
    operationId: route.id,
    summary: route.summary,
    description: `${AUTH_TEXT[route.clientAuth]} Client timeout text: \`${route.op} timeout\`.`,
    tags: [route.id.split('.')[0]],
    parameters: [...pathParams, ...(QUERY_PARAMS[route.id] ?? [])],
    requestBody: { required: true, content: { 'application/json': { schema: body } } },
    responses: {
      200: {
        description:
          "The GPU node's reply, verbatim. `errcode` 0 = success; GPU-node errors also arrive with HTTP 200 (`errcode` -3 or 1, `message` a string).",
        content: { 'application/json': { schema: { $ref: '#/components/schemas/Envelope' } } },
      },
      400: errorResponse('Refused by the client gateway (bad envelope, missing credential, unknown node): errcode -25, -32600 or -32701'),
      404: errorResponse('Unsupported URI (errcode -32601)'),
      413: errorResponse('Request body too large'),
      500: errorResponse('No answer from the GPU node in time (`<op> timeout`, errcode -1) or an unhandled request (-32701)'),
    },
  };
}

export function buildOpenApi(): Doc {
  const paths: Record<string, Doc> = {};
  for (const route of Object.values(ROUTES)) {
    paths[route.path] = { ...(paths[route.path] ?? {}), post: operation(route) };
  }
  paths['/api/v1/'] = {
    get: {
      operationId: 'version',
      summary: 'client version (any method)',
      responses: {
        200: {
          description: '`{"errcode":0,"message":{"client_version":"' + DBC_VERSION + '"}}`',
          content: { 'application/json': { schema: { $ref: '#/components/schemas/Envelope' } } },
        },
      },
    },
  };
  paths['/api/v1/peers/{option}'] = {
    post: {
      operationId: 'peers',
      summary: 'peers of this client (`active` or `global`); no body needed',
      parameters: [{ name: 'option', in: 'path', required: true, schema: { type: 'string', enum: ['active', 'global'] } }],
      responses: {
        200: {
          description: '`{"errcode":0,"message":{"peer_nodes_list":[...]}}`',
          content: { 'application/json': { schema: { $ref: '#/components/schemas/Envelope' } } },
        },
      },
    },
  };
  paths['/api/v1/images/servers'] = {
    post: {
      operationId: 'images_servers',
      summary: 'the image centres this client knows (`--image-server ID,host,port,module`); body: any JSON object',
      responses: {
        200: {
          description: '`{"errcode":0,"message":{"image_server":["ID_1",...]}}`',
          content: { 'application/json': { schema: { $ref: '#/components/schemas/Envelope' } } },
        },
      },
    },
  };
  const ticketParam = {
    name: 'ticket',
    in: 'query',
    required: true,
    schema: { type: 'string' },
    description: 'a ticket from the signed POST (single use, 60 s)',
  };
  const refused = { 403: { description: 'the ticket is forged, used, expired or of another kind: the DBC envelope' } };
  paths['/api/v1/events'] = {
    get: {
      operationId: 'events_stream',
      summary: "Server-Sent Events: the caller's task status changes and operation progress (docs/events.md); ours",
      parameters: [
        ticketParam,
        { name: 'task_id', in: 'query', required: false, schema: { type: 'string' }, description: "only this task's events" },
        { name: 'type', in: 'query', required: false, schema: { type: 'string' }, description: 'a type or prefix: task, operation, operation.progress' },
        { name: 'Last-Event-ID', in: 'header', required: false, schema: { type: 'string' }, description: 'resume after this event (also ?last_event_id=)' },
      ],
      responses: {
        200: {
          description: 'text/event-stream; each event `id: <boot>.<seq>` and `data: <RenterEvent JSON>`, `: keepalive` every 15 s',
          content: { 'text/event-stream': { schema: { $ref: '#/components/schemas/RenterEvent' } } },
        },
        ...refused,
      },
    },
  };
  const wsRoute = (operationId: string, summary: string) => ({
    get: {
      operationId,
      summary,
      parameters: [ticketParam],
      responses: { 101: { description: 'switching to the websocket protocol' }, ...refused },
    },
  });
  paths['/api/v1/events/ws'] = wsRoute('events_ws', 'the events stream over a websocket: one RenterEvent JSON per text message; ours');
  paths['/api/v1/console'] = wsRoute(
    'console_ws',
    "the VM's serial console over a websocket: binary frames both ways; text frames are JSON control messages (resize), ignored for a serial line; the last screenful is replayed on attach (docs/console.md); ours",
  );
  paths['/api/v1/vnc'] = wsRoute('vnc_ws', "the VM's VNC display over a websocket (subprotocol `binary`, as noVNC asks): RFB bytes both ways; ours");
  paths['/api/v1/openapi.json'] = {
    get: { operationId: 'openapi', summary: 'this document (GET or POST)', responses: { 200: { description: 'OpenAPI 3.0 document' } } },
  };

  return {
    openapi: '3.0.3',
    info: {
      title: 'DBC client HTTP API',
      version: DBC_NODE_VERSION,
      description: [
        'POST-only JSON API under /api/v1, compatible with the DeepBrainChain client node ' + DBC_VERSION + '.',
        'Every body is `{"peer_nodes_list":["<64-hex GPU node id>"],"additional":{...}, <credential>}`; only `peer_nodes_list[0]` is used.',
        'Credentials travel in the body, in one of three forms:',
        '1. wallet: `wallet` (SS58), `nonce` (single use), `sign` (sr25519 signature of the nonce by the wallet, hex).',
        '2. multisig: `multisig_accounts` = `{"wallets":[...],"threshold":"2","signs":[{"wallet","nonce","sign"}]}` (threshold is a string).',
        "3. session: `session_id` (from /mining_nodes/session_id) + `session_id_sign` (the renter's signature of it).",
        'The client gateway only checks that a credential is present; the GPU node verifies it.',
        'Every reply is `{"errcode": <int>, "message": ...}`; on error `message` is a string.',
      ].join('\n'),
    },
    paths,
    components: {
      schemas: {
        Envelope: {
          type: 'object',
          required: ['errcode', 'message'],
          properties: { errcode: { type: 'integer', description: '0 = success' }, message: { description: 'an object on success, a string on error' } },
        },
        ErrorEnvelope: plain(ErrorEnvelope),
        DbcBody: plain(DbcBodySchema),
        MultisigAccounts: plain(MultisigAccountsSchema),
        RenterEvent: {
          type: 'object',
          required: ['id', 'type', 'time', 'task_id'],
          properties: {
            id: { type: 'string', description: '<boot>.<seq>: give it back as Last-Event-ID to resume' },
            type: { type: 'string', enum: ['task.status', 'task.deleted', 'operation.started', 'operation.progress', 'operation.finished'] },
            time: { type: 'string', format: 'date-time' },
            task_id: { type: 'string', description: "'' for operations of no task (image transfers)" },
            status: { type: 'string', description: "task.status: the task's new status; operation.*: the operation's" },
            previous: { type: 'string', nullable: true, description: "task.status: the task's status before" },
            operation_id: { type: 'string' },
            kind: { type: 'string', description: 'the operation kind: create, start, shutdown, snapshot, download, ...' },
            progress: { type: 'number', description: 'percent 0..100' },
            stage: { type: 'string' },
            error: { type: 'string' },
            bytes_done: { type: 'integer' },
            bytes_total: { type: 'integer' },
          },
        },
      },
    },
  };
}
