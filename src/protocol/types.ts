// Shapes shared by the client gateway (api/), the transports and the GPU node (node/).
import type { ByteChannel } from '../util/channel.js';

export interface MultisigSign {
  wallet: string;
  nonce: string;
  sign: string;
}

export interface MultisigAccounts {
  wallets: string[];
  /** a JSON string in the original ("2"), atoi'd */
  threshold: string;
  signs: MultisigSign[];
}

/** The DBC request body after parse_req_params (api/envelope.ts). */
export interface DbcBody {
  peer_nodes_list: string[];
  additional: Record<string, unknown>;
  wallet?: string;
  nonce?: string;
  sign?: string;
  multisig_accounts?: MultisigAccounts;
  session_id?: string;
  session_id_sign?: string;
  rent_order?: string;
}

/** Route identifiers: derived from the route table (protocol/routes.ts). */
export type { RouteId } from './routes.js';
import type { RouteId } from './routes.js';

/** An rsync image centre (the original's `image_server=ID,host,port,module`). */
export interface ImageServerSpec {
  id: string;
  host: string;
  port: number;
  module: string;
}

/** One request as the GPU node receives it, whatever the transport (in-process or libp2p). */
export interface NodeRequest {
  route: RouteId;
  /** path parameters, e.g. { task_id } */
  params: Record<string, string>;
  /** query string pairs (no URL-decoding, as the original) */
  query: Record<string, string>;
  body: DbcBody;
  /**
   * The image centre named by `additional.image_server`, resolved by the client from its own configuration (the
   * original shipped the full `id,ip,port,module` string in the thrift field `image_server`). Absent when the
   * request named none.
   */
  image_server?: ImageServerSpec;
}

/** The GPU node's answer: passed through verbatim by the client with HTTP 200. */
export interface NodeReply {
  errcode: number;
  message: unknown;
  /** ours: the operation a lifecycle call started (query it at /api/v1/operations/<id>) */
  operation_id?: string;
}

/** One entry of /peers/active or /peers/global. */
export interface PeerEntry {
  /** the GPU node's node_id when a verified binding names this peer, else the libp2p peer id */
  node_id: string;
  /** "ip:port" as the original printed it */
  addr: string;
  /** ours: the libp2p peer id */
  peer_id?: string;
}

/** What kind of long-lived channel a ticket opens (docs/events.md, docs/console.md). */
export type ChannelKind = 'events' | 'console' | 'vnc';

/** Opening a channel on a GPU node: the single-use ticket a signed POST obtained, and the kind's parameters. */
export interface ChannelOpen {
  kind: ChannelKind;
  ticket: string;
  /** events: task_id, type (a prefix: `task`, `operation`), last_event_id */
  params: Record<string, string>;
}

/** How the client reaches a GPU node (in-process for `dbc up`, libp2p for `dbc client`). */
export interface NodeTransport {
  /**
   * a long-lived byte channel to the node (events as JSON lines, console and VNC bytes); rejects with a DbcError
   * when the node refuses the ticket. Absent: the transport has none (the gateway answers that it is not available).
   */
  openChannel?(nodeId: string, open: ChannelOpen): Promise<ByteChannel>;
  /** the node ids this transport can reach right now */
  knownNodes(): Array<{ node_id: string; name: string; version: string }>;
  request(nodeId: string, req: NodeRequest, opts?: { timeoutMs?: number }): Promise<NodeReply>;
  /** /peers/active (connected peers) and /peers/global (known peers); absent: both lists are empty */
  peers?(kind: 'active' | 'global'): Promise<PeerEntry[]>;
}

export const DBC_VERSION = '0.4.1.8';
export const DBC_NODE_VERSION = '0.1.0';
