// Errors the client gateway raises itself (HTTP layer, before or instead of relaying): HTTP status and errcode as
// the original's rest_api_service. Texts byte-for-byte from ../shared/reference/original-dbc-node.md §2.3-2.4
// unless `ours` says otherwise.
import { define, E_DEFAULT, E_TIMEOUT, RPC_INVALID_PARAMS, RPC_INVALID_REQUEST, RPC_METHOD_NOT_FOUND, RPC_RESPONSE_ERROR, type ErrorArg } from './dbc-error.js';
import { CHECK_AUTHORITY_FAILED } from './auth.js';
import { LanErrors } from './lan.js';
import { NodeErrors } from './node.js';
import { StorageErrors } from './storage.js';

const e = <A extends readonly ErrorArg[] = []>(code: string, errcode: number, http: number, text: string, where: string) =>
  define<A>({ code, errcode, http, text, where });
/** -25 / 400: a malformed request (parse_req_params, route usage) */
const param = <A extends readonly ErrorArg[] = []>(code: string, text: string, where: string) =>
  define<A>({ code, errcode: RPC_INVALID_PARAMS, http: 400, text, where });

const MULTISIG = 'multisig_accounts';

export const ClientErrors = {
  // --- URI and method (api/router.ts, api/server.ts) --------------------------------------------------------------
  onlyPost: e('CLIENT_ONLY_POST', RPC_INVALID_REQUEST, 400, 'only support POST request', 'a route (not the version) called with another method than POST'),
  invalidUri: e<[uri: string]>('CLIENT_INVALID_URI', RPC_INVALID_REQUEST, 400, 'request uri is invalid, uri:{uri}', 'a path outside /api/v1'),
  notSupportUri: e<[uri: string]>('CLIENT_NOT_SUPPORT_URI', RPC_METHOD_NOT_FOUND, 404, 'not support uri:{uri}', 'an unknown route family under /api/v1'),
  unhandled: e(
    'CLIENT_UNHANDLED',
    RPC_RESPONSE_ERROR,
    500,
    'Unhandled request',
    '/tasks/<unknown verb>/..., /stat, /config (the original never answered them)',
  ),
  /** `/tasks` with more than two segments (RAS rest_task: -32600, not -25) */
  invalidRequestsUri: e('CLIENT_INVALID_REQUESTS_URI', RPC_INVALID_REQUEST, 400, 'invalid requests uri', '/tasks with more than two segments'),
  /** ours: fastify refused the URL before routing (a bad %-escape) */
  uriMalformed: e<[detail: string]>(
    'CLIENT_URI_MALFORMED',
    RPC_INVALID_REQUEST,
    400,
    'request uri is invalid: {detail}',
    'a URL fastify cannot route (bad %-escape); ours',
  ),
  /** ours: Node's HTTP parser refused the request (raw socket answer) */
  malformedRequest: e('CLIENT_MALFORMED_REQUEST', RPC_INVALID_REQUEST, 400, 'malformed http request', 'the HTTP parser refused the request; ours'),
  headersTooLarge: e('CLIENT_HEADERS_TOO_LARGE', RPC_INVALID_REQUEST, 431, 'request headers too large', 'request headers above the limit; ours'),
  requestTimeout: e('CLIENT_REQUEST_TIMEOUT', RPC_INVALID_REQUEST, 408, 'request timeout', 'headers or body not received in time; ours'),
  /** route usage: `invalid uri, please use <usage>`; each route states its own usage once (api/router.ts) */
  uriUsage: param<[usage: string]>('CLIENT_URI_USAGE', 'invalid uri, please use {usage}', 'a route family called with the wrong segments (router usage texts)'),
  taskIdEmpty: param('CLIENT_TASK_ID_EMPTY', 'task_id is empty', '/tasks/<verb>/ and /disk/<verb>/ with an empty task id'),
  peersOption: param('CLIENT_PEERS_OPTION', 'invalid option. the option is active or global', '/peers/<other>'),
  snapshotVerbInvalid: param('CLIENT_SNAPSHOT_VERB', 'invalid uri', '/snapshot/<not list|create|delete> or too many segments'),

  // --- the body (api/envelope.ts parse_req_params) ---------------------------------------------------------------
  emptyBody: param('CLIENT_EMPTY_BODY', 'http request body is empty', 'a relayed route without a body'),
  jsonParse: param<[detail: string]>('CLIENT_JSON_PARSE', 'json parse error: {detail}', 'the body is not JSON'),
  invalidJson: param('CLIENT_INVALID_JSON', 'invalid json', 'the body is JSON but not an object'),
  bodyTooLarge: e<[limit: number]>(
    'CLIENT_BODY_TOO_LARGE',
    RPC_INVALID_PARAMS,
    413,
    'http request body is too large (limit {limit} bytes)',
    'a body above the limit; ours',
  ),
  noPeerList: param('CLIENT_NO_PEER_LIST', 'has no peer_nodes_list', 'body without peer_nodes_list'),
  peerListNotArray: param('CLIENT_PEER_LIST_NOT_ARRAY', 'peer_nodes_list is not array', 'peer_nodes_list not an array'),
  peerListItemNotString: param('CLIENT_PEER_LIST_ITEM', 'peer_nodes_list item is not string', 'a peer_nodes_list item not a string'),
  noAdditional: param('CLIENT_NO_ADDITIONAL', 'has no additional', 'body without additional'),
  additionalNotObject: param('CLIENT_ADDITIONAL_NOT_OBJECT', NodeErrors.additionalNotObject.def.text, 'additional not an object'),
  additionalTooDeep: param('CLIENT_ADDITIONAL_TOO_DEEP', 'additional is nested too deeply', 'additional nested deeper than 32 levels; ours'),
  fieldNotString: param<[field: string]>('CLIENT_FIELD_NOT_STRING', '{field} is not string', 'wallet, nonce, sign, session_id, ... present but not a string'),
  multisigNotObject: param('CLIENT_MULTISIG_NOT_OBJECT', `${MULTISIG} is not object`, 'multisig_accounts not an object'),
  multisigNoWallets: param('CLIENT_MULTISIG_NO_WALLETS', `${MULTISIG} has no member wallets`, 'multisig_accounts without wallets'),
  multisigWalletsNotArray: param('CLIENT_MULTISIG_WALLETS_NOT_ARRAY', `${MULTISIG} member wallets is not array`, 'multisig_accounts.wallets not an array'),
  multisigWalletItem: param('CLIENT_MULTISIG_WALLET_ITEM', `${MULTISIG} member wallets item is not string`, 'a wallets item not a string; ours'),
  multisigNoThreshold: param('CLIENT_MULTISIG_NO_THRESHOLD', `${MULTISIG} has no member threshold`, 'multisig_accounts without threshold'),
  multisigThresholdNotString: param('CLIENT_MULTISIG_THRESHOLD', `${MULTISIG} member threshold is not string`, 'threshold not a string'),
  multisigNoSigns: param('CLIENT_MULTISIG_NO_SIGNS', `${MULTISIG} has no member signs`, 'multisig_accounts without signs'),
  multisigSignsNotArray: param('CLIENT_MULTISIG_SIGNS_NOT_ARRAY', `${MULTISIG} member signs is not array`, 'signs not an array'),
  multisigSignItem: param('CLIENT_MULTISIG_SIGN_ITEM', `${MULTISIG} member signs item is invalid`, 'a signs item without string wallet/nonce/sign; ours'),
  peerEmpty: param('CLIENT_PEER_EMPTY', 'peer_nodeid is empty', 'a relayed route with an empty peer_nodes_list'),
  /** the credential pre-check before relaying (api/envelope.ts clientPreCheck) */
  walletSignInvalid: param('CLIENT_WALLET_SIGN_INVALID', 'wallet_sign and multisig_wallets all invalid', 'no usable credential (every route but tasks/start)'),
  sessionWalletInvalid: param('CLIENT_SESSION_WALLET_INVALID', 'session_id and wallet all invalid', 'no usable credential on tasks/start'),
  /** ours: a client-local image route without a credential */
  credentialRequired: param(
    'CLIENT_CREDENTIAL_REQUIRED',
    'this route needs a wallet signature or a session',
    'images/upload* answered by the gateway without a credential; ours',
  ),
  /** ours: the gateway's own failed-authentication budget for an address (api/auth-budget.ts) */
  authBudget: e(
    'CLIENT_AUTH_BUDGET',
    E_DEFAULT,
    429,
    `${CHECK_AUTHORITY_FAILED}: too many failed attempts from this address, try again later`,
    'an address past its failed-authentication budget; ours',
  ),

  // --- relaying to the node (api/server.ts, api/in-process.ts, p2p/transport.ts) ---------------------------------
  createNodeRequestFailed: e(
    'CLIENT_CREATE_NODE_REQUEST_FAILED',
    RPC_RESPONSE_ERROR,
    400,
    'create node request failed',
    'peer_nodes_list[0] is not a node id, or the node cannot be found or dialled',
  ),
  timeout: e<[op: string]>('CLIENT_TIMEOUT', E_TIMEOUT, 500, '{op} timeout', "the node did not answer in time (op: the route's operation name)"),
  /** ours: the transport failed for another reason than a timeout */
  nodeRequestFailed: e<[op: string, detail: string]>(
    'CLIENT_NODE_REQUEST_FAILED',
    E_TIMEOUT,
    500,
    '{op} failed: {detail}',
    'the transport to the node failed; ours',
  ),
  responseParse: e('CLIENT_RESPONSE_PARSE', E_TIMEOUT, 500, 'response parse error', "the node's reply is not a DBC reply"),
  /** lan/<name> without a node: the gateway holds no LANs (the node's text, with the gateway's errcode) */
  lanNotExist: param('CLIENT_LAN_NOT_EXIST', LanErrors.notExist.def.text, 'lan/<name> with an empty peer_nodes_list'),

  // --- tasks/logs and images (api/server.ts, images/client.ts) ----------------------------------------------------
  headOrTailInvalid: param(
    'CLIENT_HEAD_OR_TAIL_INVALID',
    `${NodeErrors.headOrTailInvalid.def.text}"`,
    'tasks/logs flag not head or tail (sic: trailing quote)',
  ),
  invalidLineNum: param('CLIENT_INVALID_LINE_NUM', 'invalid line num', 'tasks/logs line_num <= 0'),
  imageServerNotExist: param('CLIENT_IMAGE_SERVER_NOT_EXIST', 'image_server not exist', 'an image_server id the gateway does not know'),
  /** ours: a route that needs an image centre got none (the original failed later, on the node: `no image_server`) */
  noImageServer: param('CLIENT_NO_IMAGE_SERVER', StorageErrors.noImageServer.def.text, 'images routes that need an image centre, without one'),
  imageFilenameEmpty: param('CLIENT_IMAGE_FILENAME_EMPTY', StorageErrors.imageFilenameEmpty.def.text, 'images/upload* (gateway) without image_filename'),
  imageFilenameInvalid: param('CLIENT_IMAGE_FILENAME_INVALID', 'image_filename is invalid', 'images/upload* (gateway) with an unusable image_filename'),
  imageFilenameNotExist: param<[name: string]>(
    'CLIENT_IMAGE_FILENAME_NOT_EXIST',
    'image_filename: /data/{name} not exist',
    'images/upload (gateway) of a file that is not a listed local image',
  ),
};
