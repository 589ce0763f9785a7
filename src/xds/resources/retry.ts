// Decodes envoy.config.route.v3.RetryPolicy: when the router tries again, how often, and on which host.
import type { FieldIssue } from '../../core/errors.js';
import type { Result } from '../../core/result.js';
import { RETRY_ON_GRPC, RETRY_ON_HTTP, type RetryOn, type RetryPolicy } from '../../model/types.js';
import type { ProtoObj } from '../canonical.js';
import { Issues, decodeTypedExtension, durationMs, joinPath, list, msg, onlyFields, str, u32Value } from './common.js';

const PREVIOUS_HOSTS_TYPE_URL = 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate';
const PREVIOUS_PRIORITIES_TYPE_URL = 'type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig';
const KNOWN_RETRY_ON: ReadonlySet<string> = new Set([...RETRY_ON_HTTP, ...RETRY_ON_GRPC]);
/** Envoy's retry back-off default base interval; the max defaults to 10 x base. */
const DEFAULT_BACKOFF_BASE_MS = 25;

export function decodeRetryPolicy(o: ProtoObj, path: string): Result<RetryPolicy, FieldIssue> {
  const issues = new Issues();
  onlyFields(o, path, ['retry_on', 'num_retries', 'per_try_timeout', 'retriable_status_codes', 'retry_host_predicate', 'retry_priority', 'host_selection_retry_max_attempts', 'retry_back_off'], issues);
  const retryOn = new Set<RetryOn>();
  // Envoy takes a comma-separated list; an unknown token would be silently inert there. Here it is a
  // mistake worth refusing, since a typo ("5XX") would disable the retries the author counted on.
  for (const raw of str(o, 'retry_on').split(',')) {
    const token = raw.trim();
    if (token === '') continue;
    if (KNOWN_RETRY_ON.has(token)) retryOn.add(token as RetryOn);
    else issues.add(joinPath(path, 'retry_on'), `unknown retry condition ${JSON.stringify(token)} (one of ${[...KNOWN_RETRY_ON].join(', ')})`);
  }
  const codes = list(o, 'retriable_status_codes').map((c) => Number(c));
  codes.forEach((c, i) => {
    if (!Number.isInteger(c) || c < 100 || c > 599) issues.add(joinPath(path, `retriable_status_codes[${i}]`), 'must be an HTTP status code (100..599)');
  });
  // The one host predicate there is: a retry avoids the hosts already tried (Istio always sets it).
  const predicates = list(o, 'retry_host_predicate');
  predicates.forEach((p, i) => {
    const pp = joinPath(path, `retry_host_predicate[${i}]`);
    issues.take(decodeTypedExtension(p, pp, PREVIOUS_HOSTS_TYPE_URL, (c, cp) => {
      const inner = new Issues();
      onlyFields(c, cp, [], inner);
      return inner.result(() => true);
    }));
  });
  // The one retry priority there is: retries move on to priorities not tried yet (Istio's retryRemoteLocalities).
  const rpr = msg(o, 'retry_priority');
  const updateFrequency = rpr
    ? issues.take(decodeTypedExtension(rpr, joinPath(path, 'retry_priority'), PREVIOUS_PRIORITIES_TYPE_URL, (c, cp) => {
        const inner = new Issues();
        onlyFields(c, cp, ['update_frequency'], inner);
        const f = typeof c.update_frequency === 'number' ? c.update_frequency : 0;
        if (f < 1) inner.add(joinPath(cp, 'update_frequency'), 'must be at least 1');
        return inner.result(() => f);
      }))
    : 0;
  const backOff = msg(o, 'retry_back_off');
  const bp = joinPath(path, 'retry_back_off');
  if (backOff) onlyFields(backOff, bp, ['base_interval', 'max_interval'], issues);
  const baseMs = (backOff && durationMs(backOff, 'base_interval', bp, issues)) ?? DEFAULT_BACKOFF_BASE_MS;
  const maxMs = (backOff && durationMs(backOff, 'max_interval', bp, issues)) ?? baseMs * 10;
  if (backOff && baseMs <= 0) issues.add(joinPath(bp, 'base_interval'), 'must be greater than 0');
  if (maxMs < baseMs) issues.add(joinPath(bp, 'max_interval'), 'must not be less than base_interval');
  const attempts = o.host_selection_retry_max_attempts === undefined ? 1 : Number(o.host_selection_retry_max_attempts);
  if (attempts < 1) issues.add(joinPath(path, 'host_selection_retry_max_attempts'), 'must be at least 1');
  return issues.result(() => ({
    retryOn,
    numRetries: u32Value(o, 'num_retries') ?? 1,
    perTryTimeoutMs: durationMs(o, 'per_try_timeout', path, issues) ?? 0,
    retriableStatusCodes: codes,
    previousHosts: predicates.length > 0,
    previousPrioritiesUpdateFrequency: updateFrequency ?? 0,
    hostSelectionRetryMaxAttempts: attempts,
    backOffBaseMs: baseMs,
    backOffMaxMs: maxMs,
  }));
}
