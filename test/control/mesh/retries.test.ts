// VirtualService http[].retries: Istio's HTTPRetry, validated as istiod's validateHTTPRetry, into the model.
import t from 'tap';
import { check, doc, valid, withBase } from './helpers.js';

/** A reviews VirtualService whose one route has `retries` (flow style); `retries:` is on line 10 of mesh/x.yaml. */
const vsWith = (retries: string) => withBase(doc('VirtualService', 'r', `  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n    retries: ${retries}\n`));
const retriesOf = (retries: string) => valid(vsWith(retries)).virtualServices[0]!.http[0]!.retries;

t.test('every HTTPRetry field reads into the model; retryOn splits into Envoy conditions and status codes', (t) => {
  t.strictSame(retriesOf('{attempts: 3, perTryTimeout: 2s, retryOn: "gateway-error, connect-failure,503,429", retryRemoteLocalities: true, retryIgnorePreviousHosts: false, backoff: 100ms}'), {
    attempts: 3,
    perTryTimeoutMs: 2000,
    retryOn: { conditions: ['gateway-error', 'connect-failure'], statusCodes: [503, 429] },
    retryRemoteLocalities: true,
    retryIgnorePreviousHosts: false,
    backoffMs: 100,
  });
  t.strictSame(retriesOf('{attempts: 0}'), { attempts: 0 }, 'attempts 0: retries off');
  t.strictSame(retriesOf('{}'), { attempts: 0 }, 'attempts unset is 0, as in the proto');
  t.strictSame(retriesOf('{attempts: 2, retryOn: "cancelled,deadline-exceeded,internal,resource-exhausted,unavailable,reset-before-request"}')?.retryOn?.conditions.length, 6, "gRPC conditions too");
  t.equal(valid(withBase(doc('VirtualService', 'r', '  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n'))).virtualServices[0]!.http[0]!.retries, undefined, 'no retries: undefined (the default policy)');
  t.end();
});

t.test("invalid retries are refused with file, line and field, as Istio's validation does", (t) => {
  const P = 'mesh/x.yaml:10 VirtualService r: spec.http[0].retries';
  t.strictSame(check(vsWith('{attempts: -1}')), [`${P}.attempts: cannot be negative`]);
  t.strictSame(check(vsWith('{attempts: 2, perTryTimeout: 0s}')), [`${P}.perTryTimeout: must be at least 1ms`]);
  t.strictSame(check(vsWith('{attempts: 2, perTryTimeout: -1s}')), [`${P}.perTryTimeout: invalid duration "-1s" (write it as Istio does: 5s, 250ms, 1m30s, 1h)`]);
  t.strictSame(check(vsWith('{attempts: 2, perTryTimeout: soon}')), [`${P}.perTryTimeout: invalid duration "soon" (write it as Istio does: 5s, 250ms, 1m30s, 1h)`]);
  const conditions = '5xx, gateway-error, reset, reset-before-request, connect-failure, retriable-4xx, refused-stream, retriable-status-codes, envoy-ratelimited, retriable-headers, http3-post-connect-failure, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable';
  t.strictSame(check(vsWith('{attempts: 2, retryOn: "5XX,999,,connect-failure"}')), [
    `${P}.retryOn: "5XX" is not a valid retryOn policy (an HTTP status code, or one of Envoy's conditions: ${conditions})`,
    `${P}.retryOn: "999" is not a valid retryOn policy (an HTTP status code, or one of Envoy's conditions: ${conditions})`,
    `${P}.retryOn: "" is not a valid retryOn policy (an HTTP status code, or one of Envoy's conditions: ${conditions})`,
  ]);
  t.strictSame(check(vsWith('{attempts: 0, perTryTimeout: 1s, retryOn: 5xx}')), [`${P}.attempts: is 0, which disables retries, but perTryTimeout, retryOn are set: write attempts >= 1, or remove them`]);
  t.strictSame(check(vsWith('{retryRemoteLocalities: true}')), [`${P}.attempts: is 0, which disables retries, but retryRemoteLocalities is set: write attempts >= 1, or remove them`]);
  t.strictSame(check(vsWith('{attempts: 2, retryRemoteLocalities: yes please, backoff: 0s, tries: 3}')), [
    `${P}.tries: unknown field`,
    `${P}.retryRemoteLocalities: expected true or false, got "yes please"`,
    `${P}.backoff: must be at least 1ms`,
  ]);
  t.strictSame(check(vsWith('3')), [`${P}: expected an object, got 3`]);
  t.end();
});
