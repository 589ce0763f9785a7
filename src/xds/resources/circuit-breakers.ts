// Decodes envoy.config.cluster.v3.CircuitBreakers (Cluster.circuit_breakers): the DEFAULT priority's thresholds.
import { CIRCUIT_BREAKER_DEFAULTS, RETRY_BUDGET_DEFAULTS, type CircuitBreakerThresholds } from '../../model/types.js';
import type { ProtoObj } from '../canonical.js';
import { percent } from './cluster-lb.js';
import { Issues, bool, joinPath, list, msg, onlyFields, str, u32Value } from './common.js';

const THRESHOLD_FIELDS = ['priority', 'max_connections', 'max_pending_requests', 'max_requests', 'max_retries', 'retry_budget', 'track_remaining'];

/**
 * The thresholds of the DEFAULT priority, Envoy's defaults for whatever is unset. As in Envoy, when a priority
 * is listed twice the first entry wins. HIGH thresholds are checked and then ignored: a request only runs at
 * HIGH priority when its route says so (RouteAction.priority), and the route decoder accepts no priority, so
 * every request here is DEFAULT. per_host_thresholds is not implemented and refused.
 */
export function decodeCircuitBreakers(o: ProtoObj, path: string, issues: Issues): CircuitBreakerThresholds {
  onlyFields(o, path, ['thresholds'], issues);
  let found: CircuitBreakerThresholds | undefined;
  list(o, 'thresholds').forEach((t, i) => {
    const p = joinPath(path, `thresholds[${i}]`);
    const decoded = thresholds(t, p, issues);
    if (str(t, 'priority') !== 'HIGH') found ??= decoded;
  });
  return found ?? CIRCUIT_BREAKER_DEFAULTS;
}

function thresholds(o: ProtoObj, path: string, issues: Issues): CircuitBreakerThresholds {
  onlyFields(o, path, THRESHOLD_FIELDS, issues);
  const d = CIRCUIT_BREAKER_DEFAULTS;
  const rb = msg(o, 'retry_budget');
  const rbPath = joinPath(path, 'retry_budget');
  if (rb) onlyFields(rb, rbPath, ['budget_percent', 'min_retry_concurrency'], issues);
  return {
    maxConnections: u32Value(o, 'max_connections') ?? d.maxConnections,
    maxPendingRequests: u32Value(o, 'max_pending_requests') ?? d.maxPendingRequests,
    maxRequests: u32Value(o, 'max_requests') ?? d.maxRequests,
    maxRetries: u32Value(o, 'max_retries') ?? d.maxRetries,
    ...(rb && {
      retryBudget: {
        budgetPercent: percent(rb, 'budget_percent', rbPath, issues) ?? RETRY_BUDGET_DEFAULTS.budgetPercent,
        minRetryConcurrency: u32Value(rb, 'min_retry_concurrency') ?? RETRY_BUDGET_DEFAULTS.minRetryConcurrency,
      },
    }),
    trackRemaining: bool(o, 'track_remaining'),
  };
}
