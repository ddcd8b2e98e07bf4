import path from 'node:path';
import type { TestGateway } from './gateway.js';
import { ROOT } from './process.js';

/** An upstream entry for the stdio fixture (test/fixtures/stdio-fixture.ts). */
export function stdioFixture(name: string, extra: Record<string, unknown> = {}) {
  return {
    name,
    transport: 'stdio',
    command: process.execPath,
    args: ['--import', 'tsx', path.join(ROOT, 'test/fixtures/stdio-fixture.ts'), name],
    auth_type: 'none',
    ...extra,
  };
}

export interface McpResponse {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

/** POSTs JSON-RPC to the gateway with a credential (a virtual key or a JWT). */
export async function mcpPost(
  gw: TestGateway,
  body: unknown,
  options: { credential?: string; path?: string; headers?: Record<string, string>; signal?: AbortSignal } = {},
): Promise<McpResponse> {
  const res = await fetch(gw.url + (options.path ?? '/mcp'), {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...(options.credential && { authorization: `Bearer ${options.credential}` }),
      ...options.headers,
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: options.signal,
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

let nextId = 1;
/** One JSON-RPC request; returns the response object (result or error). */
export async function rpc(gw: TestGateway, credential: string, method: string, params?: Record<string, unknown>, path = '/mcp') {
  const res = await mcpPost(gw, { jsonrpc: '2.0', id: nextId++, method, ...(params && { params }) }, { credential, path });
  if (res.status !== 200) throw new Error(`${method}: HTTP ${res.status} ${res.text}`);
  return res.json as { result?: any; error?: { code: number; message: string } };
}

/** Resolves once every named upstream's shared connection is ready (event-driven, bounded). */
export function upstreamsReady(gw: TestGateway, names: string[], timeoutMs = 20_000): Promise<void> {
  const pool = gw.gatehouse.upstreams.pool;
  const ready = () => names.every((n) => pool.get(n)?.state === 'ready');
  if (ready()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`upstreams not ready: ${names.map((n) => `${n}=${pool.get(n)?.state}:${pool.get(n)?.lastError ?? ''}`).join(', ')}`));
    }, timeoutMs);
    const unsubscribe = pool.onCatalogChange(() => {
      if (!ready()) return;
      clearTimeout(timer);
      unsubscribe();
      resolve();
    });
  });
}

/** Resolves the next time `upstream`'s catalog changes. */
export function catalogChange(gw: TestGateway, upstream: string, timeoutMs = 20_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`no catalog change of ${upstream}`));
    }, timeoutMs);
    const unsubscribe = gw.gatehouse.upstreams.onCatalogChange((name) => {
      if (name !== upstream) return;
      clearTimeout(timer);
      unsubscribe();
      resolve();
    });
  });
}
