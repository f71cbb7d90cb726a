import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Every metric of one process, in its own registry (no global registry: two instances can live in
 * one test process). The API exposes `registry` on /metrics.
 */
export interface Metrics {
  readonly registry: Registry;
  readonly reconciles: Counter<'outcome'>;
  readonly reconcileDuration: Histogram<'outcome'>;
  readonly reconcileBatchSize: Histogram;
  readonly queueDepth: Gauge;
  readonly replicasByStatus: Gauge<'status'>;
  readonly isLeader: Gauge;
  readonly binderPasses: Counter;
  readonly nodeReads: Counter<'kind'>;
  readonly nodeRowsRead: Counter;
  readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  readonly httpDuration: Histogram<'method' | 'route' | 'status'>;
  readonly httpRateLimited: Counter;
  readonly statusReads: Counter<'answer'>;
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'steady_' });
  const registers = [registry];
  return {
    registry,
    reconciles: new Counter({
      name: 'steady_reconciles_total',
      help: 'Reconciles by outcome: changed, unchanged, error, skipped.',
      labelNames: ['outcome'],
      registers,
    }),
    reconcileDuration: new Histogram({
      name: 'steady_reconcile_duration_seconds',
      help: 'Time of one reconcile transaction (of a batch of deployments, under a backlog).',
      labelNames: ['outcome'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    reconcileBatchSize: new Histogram({
      name: 'steady_reconcile_batch_size',
      help: 'Deployments reconciled in one transaction.',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers,
    }),
    queueDepth: new Gauge({ name: 'steady_workqueue_depth', help: 'Deployments waiting to be reconciled.', registers }),
    replicasByStatus: new Gauge({
      name: 'steady_replicas',
      help: 'Replica rows by status, as of the last controller sweep.',
      labelNames: ['status'],
      registers,
    }),
    isLeader: new Gauge({ name: 'steady_controller_leader', help: '1 while this process holds the controller lease.', registers }),
    binderPasses: new Counter({
      name: 'steady_binder_passes_total',
      help: 'Passes that read every node to bind replicas waiting for one (at most one a second).',
      registers,
    }),
    nodeReads: new Counter({
      name: 'steady_node_reads_total',
      help: 'Reads of the nodes for placement: every node (full), or only those changed since the last read (changed).',
      labelNames: ['kind'],
      registers,
    }),
    nodeRowsRead: new Counter({ name: 'steady_node_rows_read_total', help: 'Node rows those reads fetched.', registers }),
    httpRequests: new Counter({
      name: 'steady_http_requests_total',
      help: 'HTTP requests by method, route pattern and status.',
      labelNames: ['method', 'route', 'status'],
      registers,
    }),
    httpDuration: new Histogram({
      name: 'steady_http_request_duration_seconds',
      help: 'HTTP request latency by method, route pattern and status.',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    httpRateLimited: new Counter({
      name: 'steady_http_rate_limited_total',
      help: 'API requests refused with 429 because the caller exceeded STEADY_RATE_LIMIT.',
      registers,
    }),
    statusReads: new Counter({
      name: 'steady_status_reads_total',
      help: 'Status objects answered: kept (its rows unchanged since this process last built it) or built (read whole).',
      labelNames: ['answer'],
      registers,
    }),
  };
}
