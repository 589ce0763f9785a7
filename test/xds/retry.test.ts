// RouteAction.retry_policy: Envoy's fields and defaults, and refusals with their field paths.
import t from 'tap';
import { ROUTE_CONFIGURATION_TYPE_URL } from '../../src/xds/protos.js';
import { problems, viaJson } from './helpers.js';

const PREVIOUS_HOSTS = { name: 'envoy.retry_host_predicates.previous_hosts', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate' } };
const withPolicy = (retry_policy: object) => viaJson(ROUTE_CONFIGURATION_TYPE_URL, { name: 'rc', virtual_hosts: [{ name: 'vh', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'c', retry_policy } }] }] });
const P = 'virtual_hosts[0].routes[0].route.retry_policy';
const policyOf = (r: ReturnType<typeof withPolicy>) => (r.ok && r.value.virtualHosts[0]!.routes[0]!.action.kind === 'route' ? r.value.virtualHosts[0]!.routes[0]!.action.action.retryPolicy : undefined);

t.test("Istio's retry policy decodes with every field", (t) => {
  const p = policyOf(withPolicy({
    retry_on: 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes',
    num_retries: 2,
    per_try_timeout: '0.25s',
    retriable_status_codes: [503],
    retry_host_predicate: [PREVIOUS_HOSTS],
    host_selection_retry_max_attempts: '5',
    retry_back_off: { base_interval: '0.01s', max_interval: '0.05s' },
  }));
  t.ok(p);
  t.strictSame([...p!.retryOn], ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes']);
  t.match(p, { numRetries: 2, perTryTimeoutMs: 250, retriableStatusCodes: [503], previousHosts: true, hostSelectionRetryMaxAttempts: 5, backOffBaseMs: 10, backOffMaxMs: 50 });
  t.end();
});

t.test("Envoy's defaults: one retry, no per-try timeout, 25 ms base back-off capped at 10x, no host predicate", (t) => {
  const p = policyOf(withPolicy({ retry_on: '5xx' }));
  t.match(p, { numRetries: 1, perTryTimeoutMs: 0, retriableStatusCodes: [], previousHosts: false, hostSelectionRetryMaxAttempts: 1, backOffBaseMs: 25, backOffMaxMs: 250 });
  t.match(policyOf(withPolicy({ retry_on: '5xx', retry_back_off: { base_interval: '0.1s' } })), { backOffBaseMs: 100, backOffMaxMs: 1000 });
  t.match(policyOf(withPolicy({ retry_on: ' 5xx , ,reset ' })), { retryOn: new Set(['5xx', 'reset']) }, 'spaces and empty tokens are tolerated, as in Envoy');
  t.end();
});

t.test('mistakes are refused with their field paths', (t) => {
  t.strictSame(problems(withPolicy({ retry_on: '5XX,reset' })), [`${P}.retry_on: unknown retry condition "5XX" (one of 5xx, gateway-error, reset, reset-before-request, connect-failure, retriable-4xx, refused-stream, retriable-status-codes, envoy-ratelimited, retriable-headers, http3-post-connect-failure, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable)`]);
  t.strictSame(problems(withPolicy({ retry_on: '5xx', retriable_status_codes: [99, 600] })), [`${P}.retriable_status_codes[0]: must be an HTTP status code (100..599)`, `${P}.retriable_status_codes[1]: must be an HTTP status code (100..599)`]);
  t.match(problems(withPolicy({ retry_on: '5xx', retry_host_predicate: [{ name: 'x', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.retry.host.omit_canary_hosts.v3.OmitCanaryHostsPredicate' } }] })), [/^virtual_hosts\[0\]\.routes\[0\]\.route\.retry_policy\.retry_host_predicate\[0\]\.typed_config: expected PreviousHostsPredicate/]);
  t.strictSame(problems(withPolicy({ retry_on: '5xx', retry_back_off: { base_interval: '0.1s', max_interval: '0.05s' } })), [`${P}.retry_back_off.max_interval: must not be less than base_interval`]);
  t.strictSame(problems(withPolicy({ retry_on: '5xx', retry_back_off: { base_interval: '0s' } })), [`${P}.retry_back_off.base_interval: must be greater than 0`]);
  t.strictSame(problems(withPolicy({ retry_on: '5xx', host_selection_retry_max_attempts: '-1' })), [`${P}.host_selection_retry_max_attempts: must be at least 1`]);
  t.strictSame(problems(withPolicy({ retry_on: '5xx', retriable_headers: [{ name: 'x' }] })), [`${P}.retriable_headers: field 'retriable_headers' is not supported`]);
  t.end();
});

t.test('retry_priority previous_priorities: update_frequency decoded, other priorities refused', (t) => {
  const PP = 'type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig';
  t.match(policyOf(withPolicy({ retry_on: '5xx', retry_priority: { name: 'envoy.retry_priorities.previous_priorities', typed_config: { '@type': PP, update_frequency: 2 } } })), { previousPrioritiesUpdateFrequency: 2 });
  t.match(policyOf(withPolicy({ retry_on: '5xx' })), { previousPrioritiesUpdateFrequency: 0 });
  t.strictSame(problems(withPolicy({ retry_on: '5xx', retry_priority: { name: 'p', typed_config: { '@type': PP } } })), [`${P}.retry_priority.typed_config.update_frequency: must be at least 1`]);
  t.end();
});
