// Decodes VirtualService HTTPRoute.fault (Istio's HTTPFaultInjection): a fixed delay and/or an abort, each with a percentage.
import { describe, joinPath } from '../../xds/json.js';
import { Reader, defined, type Shape } from './schema.js';

/** HTTPFaultInjection, validated; percentages are Istio's 0..100 (a double), undefined when not written. */
export interface HTTPFaultInjection {
  readonly delay?: { readonly fixedDelayMs: number; readonly percentage?: number };
  /** Exactly one of httpStatus and grpcStatus (the gRPC code's number, from its name). */
  readonly abort?: { readonly httpStatus?: number; readonly grpcStatus?: number; readonly percentage?: number };
}

const FAULT: Shape = { fields: ['delay', 'abort'] };
const DELAY: Shape = { fields: ['fixedDelay', 'percentage', 'percent'], notYet: ['exponentialDelay'] };
const ABORT: Shape = { fields: ['httpStatus', 'grpcStatus', 'percentage'], notYet: ['http2Error'] };
const PERCENT: Shape = { fields: ['value'] };

/** The gRPC status names Istio accepts for abort.grpcStatus (its SupportedGRPCStatus), in code order 0..16. */
const GRPC_CODES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
];

/**
 * HTTPFaultInjection as Istio's validateHTTPFaultInjection checks it: at least one of delay and abort; each
 * percentage in 0..100; the delay a fixedDelay of at least 1ms; the abort exactly one of an HTTP status in
 * 200..599 and a gRPC status name. Istio lets a fault without a status or delay through to a proxy that then
 * refuses it; here it is an error in the user's file instead.
 */
export function httpFault(r: Reader, v: unknown, path: string): HTTPFaultInjection | undefined {
  const o = r.object(v, path, FAULT);
  if (!o) return undefined;
  const set = (k: string) => o[k] !== undefined && o[k] !== null;
  if (!set('delay') && !set('abort')) return r.issue(path, 'a fault needs a delay, an abort, or both');
  return defined({
    delay: set('delay') ? delay(r, o.delay, joinPath(path, 'delay')) : undefined,
    abort: set('abort') ? abort(r, o.abort, joinPath(path, 'abort')) : undefined,
  });
}

function delay(r: Reader, v: unknown, path: string): HTTPFaultInjection['delay'] {
  const o = r.object(v, path, DELAY);
  if (!o || !r.need(o, 'fixedDelay', path)) return undefined;
  // Go's duration syntax has a sign; Istio refuses a negative delay (ValidateDuration), say so plainly.
  if (typeof o.fixedDelay === 'string' && o.fixedDelay.trim().startsWith('-')) return r.issue(joinPath(path, 'fixedDelay'), 'must not be negative');
  const fixedDelayMs = r.duration(o, 'fixedDelay', path);
  // `percent` (an integer) is Istio's deprecated spelling; `percentage` wins when both are written, as in istiod.
  const legacy = r.int(o, 'percent', path, 0, 100);
  const percentage = percent(r, o.percentage, joinPath(path, 'percentage')) ?? legacy;
  return fixedDelayMs === undefined ? undefined : defined({ fixedDelayMs, percentage });
}

function abort(r: Reader, v: unknown, path: string): HTTPFaultInjection['abort'] {
  const o = r.object(v, path, ABORT);
  if (!o) return undefined;
  const written = ['httpStatus', 'grpcStatus'].filter((k) => o[k] !== undefined && o[k] !== null);
  if (written.length === 0) return r.issue(path, 'one of httpStatus, grpcStatus is required');
  if (written.length > 1) return r.issue(joinPath(path, written[1]!), `only one of ${written.join(', ')} may be set`);
  const percentage = percent(r, o.percentage, joinPath(path, 'percentage'));
  if (written[0] === 'httpStatus') {
    const httpStatus = r.int(o, 'httpStatus', path, 200, 599);
    return httpStatus === undefined ? undefined : defined({ httpStatus, percentage });
  }
  const name = r.string(o, 'grpcStatus', path, (s) => (GRPC_CODES.includes(s) ? undefined : `${JSON.stringify(s)} is not a gRPC status (one of ${GRPC_CODES.join(', ')})`));
  return name === undefined ? undefined : defined({ grpcStatus: GRPC_CODES.indexOf(name), percentage });
}

/** Istio's Percent {value: double}, 0..100. */
function percent(r: Reader, v: unknown, path: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  const o = r.object(v, path, PERCENT);
  if (!o || !r.need(o, 'value', path)) return undefined;
  const value = o.value;
  const at = joinPath(path, 'value');
  if (typeof value !== 'number' || !Number.isFinite(value)) return r.issue(at, `expected a number, got ${describe(value)}`);
  return value < 0 || value > 100 ? r.issue(at, `${value} is outside 0..100`) : value;
}
