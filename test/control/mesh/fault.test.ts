// VirtualService http[].fault: Istio's HTTPFaultInjection, validated with file:line:field errors, into the model.
import t from 'tap';
import { check, doc, valid, withBase } from './helpers.js';

/** A reviews VirtualService whose one route has `fault` (flow style); `fault:` is on line 10 of mesh/x.yaml. */
const vsWith = (fault: string) => withBase(doc('VirtualService', 'r', `  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n    fault: ${fault}\n`));
const faultOf = (fault: string) => valid(vsWith(fault)).virtualServices[0]!.http[0]!.fault;

t.test('delay and abort read into the model: percentages 0..100, gRPC status names to codes', (t) => {
  t.strictSame(faultOf('{delay: {fixedDelay: 1.5s, percentage: {value: 12.5}}, abort: {httpStatus: 503, percentage: {value: 0.1}}}'), {
    delay: { fixedDelayMs: 1500, percentage: 12.5 },
    abort: { httpStatus: 503, percentage: 0.1 },
  });
  t.strictSame(faultOf('{abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}'), { abort: { grpcStatus: 14, percentage: 100 } });
  t.strictSame(faultOf('{abort: {grpcStatus: OK}}'), { abort: { grpcStatus: 0 } }, 'no percentage: undefined (Istio: no request is aborted)');
  t.strictSame(faultOf('{delay: {fixedDelay: 2s, percent: 30}}'), { delay: { fixedDelayMs: 2000, percentage: 30 } }, "the deprecated integer percent");
  t.strictSame(faultOf('{delay: {fixedDelay: 2s, percent: 30, percentage: {value: 5}}}'), { delay: { fixedDelayMs: 2000, percentage: 5 } }, 'percentage wins over percent');
  t.equal(valid(withBase(doc('VirtualService', 'r', '  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n    fault: null\n'))).virtualServices[0]!.http[0]!.fault, undefined);
  t.end();
});

t.test('invalid faults are refused with file, line and field', (t) => {
  const P = 'mesh/x.yaml:10 VirtualService r: spec.http[0].fault';
  t.strictSame(check(vsWith('{}')), [`${P}: a fault needs a delay, an abort, or both`]);
  t.strictSame(check(vsWith('{abort: {httpStatus: 503, percentage: {value: 101}}, delay: {fixedDelay: 1s, percentage: {value: -1}}}')), [
    `${P}.delay.percentage.value: -1 is outside 0..100`,
    `${P}.abort.percentage.value: 101 is outside 0..100`,
  ]);
  t.strictSame(check(vsWith('{delay: {fixedDelay: -1s}}')), [`${P}.delay.fixedDelay: must not be negative`]);
  t.strictSame(check(vsWith('{delay: {fixedDelay: 0s}}')), [`${P}.delay.fixedDelay: must be at least 1ms`]);
  t.strictSame(check(vsWith('{delay: {percentage: {value: 10}}}')), [`${P}.delay.fixedDelay: is required`]);
  t.strictSame(check(vsWith('{delay: {fixedDelay: 1s, percent: 101}}')), [`${P}.delay.percent: must be 0..100`]);
  t.strictSame(check(vsWith('{abort: {percentage: {value: 10}}}')), [`${P}.abort: one of httpStatus, grpcStatus is required`]);
  t.strictSame(check(vsWith('{abort: {httpStatus: 503, grpcStatus: INTERNAL}}')), [`${P}.abort.grpcStatus: only one of httpStatus, grpcStatus may be set`]);
  t.strictSame(check(vsWith('{abort: {httpStatus: 600}}')), [`${P}.abort.httpStatus: must be 200..599`]);
  t.strictSame(check(vsWith('{abort: {httpStatus: 99}}')), [`${P}.abort.httpStatus: must be 200..599`]);
  t.match(check(vsWith('{abort: {grpcStatus: UNAVAILABEL}}')), [/^mesh\/x\.yaml:10 VirtualService r: spec\.http\[0\]\.fault\.abort\.grpcStatus: "UNAVAILABEL" is not a gRPC status \(one of OK, CANCELLED, .*UNAUTHENTICATED\)$/]);
  t.strictSame(check(vsWith('{abort: {http2Error: CANCEL}, delay: {fixedDelay: 1s, exponentialDelay: 1s}}')), [
    `${P}.delay.exponentialDelay: not supported yet`,
    `${P}.abort.http2Error: not supported yet`,
    `${P}.abort: one of httpStatus, grpcStatus is required`,
  ]);
  t.strictSame(check(vsWith('{abort: {httpStatus: 500, percentage: {value: "ten"}}}')), [`${P}.abort.percentage.value: expected a number, got "ten"`]);
  t.strictSame(check(vsWith('{abort: {httpStatus: 500, percentage: {}}}')), [`${P}.abort.percentage.value: is required`]);
  t.strictSame(check(vsWith('{abort: {httpStatus: 500, percentage: 50}}')), [`${P}.abort.percentage: expected an object, got 50`]);
  t.strictSame(check(vsWith('{delay: {fixedDelay: 1s, percentage: 5}}')), [`${P}.delay.percentage: expected an object, got 5`]);
  t.strictSame(check(vsWith('{delay: 3s}')), [`${P}.delay: expected an object, got "3s"`]);
  t.strictSame(check(vsWith('{abort: 503}')), [`${P}.abort: expected an object, got 503`]);
  t.strictSame(check(vsWith('[]')), [`${P}: expected an object, got a list`]);
  t.end();
});
