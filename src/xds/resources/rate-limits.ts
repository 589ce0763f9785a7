// RouteAction.rate_limits (config.route.v3.RateLimit): the actions that turn a request into rate-limit descriptors.
import type { FieldIssue } from '../../core/errors.js';
import type { Result } from '../../core/result.js';
import type { RateLimitAction, RateLimitEntry } from '../../model/rate-limit.js';
import type { ProtoObj } from '../canonical.js';
import { Issues, bool, boolValue, decodeTypedExtension, joinPath, list, msg, onlyFields, requireOne, required, str, u32Value } from './common.js';
import { decodeHeaderMatcher } from './matchers.js';

export const EXPR_DESCRIPTOR_TYPE_URL = 'type.googleapis.com/envoy.extensions.rate_limit_descriptors.expr.v3.Descriptor';
/** The one CEL expression understood: the peer certificate's URI SAN, i.e. the caller's SPIFFE ID (Envoy attribute). */
export const PEER_URI_SAN_EXPR = 'connection.uri_san_peer_certificate';

const ACTIONS = ['request_headers', 'header_value_match', 'generic_key', 'remote_address', 'extension'];

/**
 * The rate_limits of one route. `limit` (dynamic overrides) and `disable_key` (the global limiter's runtime switch;
 * Envoy's local limiter skips such entries) are not supported; nor are the actions that read what this proxy does
 * not have (source/destination cluster names, metadata, masked addresses, query parameters).
 */
export function decodeRateLimits(items: readonly ProtoObj[], path: string, issues: Issues): RateLimitEntry[] {
  return items.map((o, i) => {
    const p = `${path}[${i}]`;
    onlyFields(o, p, ['stage', 'actions'], issues);
    const stage = u32Value(o, 'stage') ?? 0;
    if (stage > 10) issues.add(joinPath(p, 'stage'), `${stage} is above 10`);
    const actions = list(o, 'actions');
    if (actions.length === 0) issues.add(joinPath(p, 'actions'), 'at least one action is required');
    return { stage, actions: actions.flatMap((a, j) => action(a, joinPath(p, `actions[${j}]`), issues) ?? []) };
  });
}

function action(o: ProtoObj, path: string, issues: Issues): RateLimitAction | undefined {
  requireOne(o, path, ACTIONS, onlyFields(o, path, ACTIONS, issues), issues);
  const part = (k: string, fields: readonly string[]): [ProtoObj, string] | undefined => {
    const m = msg(o, k);
    if (m) onlyFields(m, joinPath(path, k), fields, issues);
    return m && [m, joinPath(path, k)];
  };
  const rh = part('request_headers', ['header_name', 'descriptor_key', 'skip_if_absent']);
  if (rh) {
    const header = required(rh[0], 'header_name', rh[1], issues).toLowerCase();
    return { kind: 'request_headers', header, key: required(rh[0], 'descriptor_key', rh[1], issues), skip: bool(rh[0], 'skip_if_absent') };
  }
  const hvm = part('header_value_match', ['descriptor_key', 'descriptor_value', 'expect_match', 'headers']);
  if (hvm) {
    const [m, p] = hvm;
    const headers = list(m, 'headers').flatMap((h, i) => issues.take(decodeHeaderMatcher(h, joinPath(p, `headers[${i}]`))) ?? []);
    if (list(m, 'headers').length === 0) issues.add(joinPath(p, 'headers'), 'at least one header matcher is required');
    const value = required(m, 'descriptor_value', p, issues);
    return { kind: 'header_value_match', key: str(m, 'descriptor_key') || 'header_match', value, expectMatch: boolValue(m, 'expect_match') ?? true, headers };
  }
  const gk = part('generic_key', ['descriptor_key', 'descriptor_value']);
  if (gk) return { kind: 'generic_key', key: str(gk[0], 'descriptor_key') || 'generic_key', value: required(gk[0], 'descriptor_value', gk[1], issues) };
  if (part('remote_address', [])) return { kind: 'remote_address', key: 'remote_address' };
  const ext = msg(o, 'extension');
  if (ext) return issues.take(decodeTypedExtension(ext, joinPath(path, 'extension'), EXPR_DESCRIPTOR_TYPE_URL, exprDescriptor));
  return undefined;
}

/** envoy.extensions.rate_limit_descriptors.expr.v3.Descriptor, for the one expression we evaluate. */
function exprDescriptor(o: ProtoObj, path: string): Result<RateLimitAction, FieldIssue> {
  const issues = new Issues();
  const clean = onlyFields(o, path, ['descriptor_key', 'skip_if_error', 'text'], issues);
  const key = required(o, 'descriptor_key', path, issues);
  requireOne(o, path, ['text'], clean, issues);
  const text = str(o, 'text');
  if (text !== '' && text.trim() !== PEER_URI_SAN_EXPR) issues.add(joinPath(path, 'text'), `only the expression ${PEER_URI_SAN_EXPR} (the caller's SPIFFE ID) is supported`);
  return issues.result(() => ({ kind: 'source_principal', key, skip: bool(o, 'skip_if_error') }));
}
