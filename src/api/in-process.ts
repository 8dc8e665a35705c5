// The `dbc up` transport: the client hands the NodeRequest to the GPU node dispatcher in the same process,
// the same object a network transport would carry, so both paths run the same node code.
import { ClientErrors } from '../protocol/errors.js';
import type { ChannelOpen, NodeReply, NodeRequest, NodeTransport } from '../protocol/types.js';
import type { ByteChannel } from '../util/channel.js';
import { withDeadline } from '../util/deadline.js';

export interface InProcessNode {
  nodeId: string;
  name: string;
  version: string;
  handle(req: NodeRequest): Promise<NodeReply>;
  openChannel?(open: ChannelOpen): Promise<ByteChannel>;
}

export class InProcessTransport implements NodeTransport {
  constructor(private readonly node: InProcessNode) {}

  knownNodes(): Array<{ node_id: string; name: string; version: string }> {
    return [{ node_id: this.node.nodeId, name: this.node.name, version: this.node.version }];
  }

  async openChannel(nodeId: string, open: ChannelOpen): Promise<ByteChannel> {
    if (nodeId.toLowerCase() !== this.node.nodeId.toLowerCase() || !this.node.openChannel) throw ClientErrors.createNodeRequestFailed();
    return this.node.openChannel(structuredClone(open));
  }

  async request(nodeId: string, req: NodeRequest, opts?: { timeoutMs?: number }): Promise<NodeReply> {
    if (nodeId.toLowerCase() !== this.node.nodeId.toLowerCase()) throw ClientErrors.createNodeRequestFailed();
    // a copy, as the network would deliver: the node may normalise its request without touching the caller's
    const handled = this.node.handle(structuredClone(req));
    const timeoutMs = opts?.timeoutMs;
    if (timeoutMs === undefined) return handled;
    return withDeadline(handled, timeoutMs, `node ${nodeId} did not answer within ${timeoutMs} ms`);
  }
}
