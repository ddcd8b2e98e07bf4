/**
 * Benchmark floor: a raw HTTP pass-through proxy (node:http, keep-alive agent, no parsing, no
 * authentication). Any Node hop costs at least this much.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

const target = new URL(process.argv[2]!);
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
const server = http.createServer((req, res) => {
  const upstream = http.request(
    { host: target.hostname, port: target.port, path: target.pathname, method: req.method, headers: { ...req.headers, host: target.host }, agent },
    (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    },
  );
  upstream.on('error', () => {
    res.writeHead(502);
    res.end();
  });
  req.pipe(upstream);
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}/mcp`, ready: 'true' })}\n`);
});
