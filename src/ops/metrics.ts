import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CallObserver } from '../gateway/dispatch.js';
import type { Upstreams } from '../upstreams/upstreams.js';

/**
 * Prometheus metrics (product §5), served at /metrics: requests by route and status, their
 * latency, tool calls by upstream and outcome, their latency, and the upstream connections.
 * Routes are labelled by their pattern (`/mcp/:upstream`), never by raw path, to bound cardinality.
 */
export class Metrics implements CallObserver {
  readonly registry = new Registry();
  private readonly requests = new Counter({
    name: 'gatehouse_http_requests_total',
    help: 'HTTP requests answered, by method, route and status code',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });
  private readonly requestSeconds = new Histogram({
    name: 'gatehouse_http_request_duration_seconds',
    help: 'Time to answer an HTTP request, by route',
    labelNames: ['route'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  private readonly toolCalls = new Counter({
    name: 'gatehouse_tool_calls_total',
    help: 'Tool calls forwarded to upstreams, by upstream and outcome (ok, tool_error, error, unavailable, timeout)',
    labelNames: ['upstream', 'outcome'] as const,
    registers: [this.registry],
  });
  private readonly toolCallSeconds = new Histogram({
    name: 'gatehouse_tool_call_duration_seconds',
    help: 'Time an upstream took to answer a tool call',
    labelNames: ['upstream'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });

  constructor(upstreams: Upstreams) {
    const { pool, personal } = upstreams;
    collectDefaultMetrics({ register: this.registry, prefix: 'gatehouse_' });
    new Gauge({
      name: 'gatehouse_upstream_up',
      help: 'Whether the shared connection to an upstream is ready (1) or not (0)',
      labelNames: ['upstream', 'state'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const c of pool.all()) this.set({ upstream: c.name, state: c.state }, c.state === 'ready' ? 1 : 0);
      },
    });
    new Gauge({
      name: 'gatehouse_upstream_connections',
      help: 'Ready upstream connections (sessions), by upstream: the shared one, or one per identity for OAuth upstreams',
      labelNames: ['upstream'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const c of pool.all()) this.set({ upstream: c.name }, c.state === 'ready' ? 1 : 0);
        for (const [upstream, count] of personal.readyByUpstream()) this.set({ upstream }, count);
      },
    });
    new Gauge({
      name: 'gatehouse_upstream_tools',
      help: 'Tools each upstream offers (before filtering)',
      labelNames: ['upstream'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const c of pool.all()) this.set({ upstream: c.name }, c.catalog.tools.length);
      },
    });
  }

  request(method: string, route: string, status: number, seconds: number): void {
    this.requests.inc({ method, route, status: String(status) });
    this.requestSeconds.observe({ route }, seconds);
  }

  toolCall(upstream: string, outcome: 'ok' | 'tool_error' | 'error' | 'unavailable' | 'timeout', seconds: number): void {
    this.toolCalls.inc({ upstream, outcome });
    this.toolCallSeconds.observe({ upstream }, seconds);
  }
}
