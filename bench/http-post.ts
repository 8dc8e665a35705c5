// The benches' request sender: a keep-alive POST of a prepared JSON body, resolving with status and text.
import http from 'node:http';

export interface Poster {
  post(url: URL, body: string): Promise<{ status: number; text: string }>;
  /** close the kept-alive sockets */
  close(): void;
}

export function keepAlivePoster(maxSockets: number): Poster {
  const agent = new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
  const post: Poster['post'] = (url, body) =>
    new Promise((resolve, reject) => {
      const req = http.request(
        {
          agent,
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: 'POST',
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  return { post, close: () => agent.destroy() };
}
