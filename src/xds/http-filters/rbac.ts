// envoy.filters.http.rbac (envoy.extensions.filters.http.rbac.v3.RBAC): the RBAC policies, decoded and checked by field path.
import { isIP } from 'node:net';
import type { CidrRange, MetadataMatcher, Permission, PermissionLeaf, Principal, PrincipalLeaf, RbacAction, RbacConfig, RbacPolicy, RbacRules, RuleTree, SharedLeaf, ValueMatcher } from '../../model/rbac.js';
import { RBAC_TYPE_URL } from '../../model/rbac.js';
import type { StringMatcher } from '../../model/types.js';
import type { ProtoObj } from '../canonical.js';
import { decodeHeaderMatcher, decodeStringMatcher } from '../resources/matchers.js';
import { Issues, bool, enumOf, joinPath, list, msg, num, onlyFields, required, requireOne, str, u32Value } from '../resources/common.js';
import type { HttpFilterDecoder } from './index.js';

export { RBAC_TYPE_URL };

/**
 * A policy part we cannot evaluate is refused (a NACK), never skipped: skipping a permission of an ALLOW policy
 * widens nothing, but skipping one of a DENY policy, or a principal anywhere, would half-enforce it.
 */
const UNSUPPORTED: Readonly<Record<string, string>> = {
  condition: 'CEL conditions are not supported; a policy that cannot be evaluated in full is refused',
  checked_condition: 'CEL conditions are not supported; a policy that cannot be evaluated in full is refused',
  matcher: 'the generic matcher API is not supported; use the RBAC rule fields',
  uri_template: 'uri_template is not supported; use url_path',
  filter_state: 'filter_state matching is not supported',
  audit_logging_options: 'audit logging extensions are not supported; the LOG action and shadow_rules log every match',
  shadow_matcher: 'the generic matcher API is not supported; use shadow_rules',
};

/** Exactly one member of a oneof (requireOne reports a missing one at the parent), and which. */
function oneOf(o: ProtoObj, path: string, members: readonly string[], clean: boolean, issues: Issues): string | undefined {
  requireOne(o, path, members, clean, issues);
  return members.find((m) => o[m] !== undefined);
}

/** envoy.config.core.v3.CidrRange: an IP literal and a prefix length within its family (host bits are ignored, as Envoy masks them). */
export function decodeCidr(o: ProtoObj, path: string, issues: Issues): CidrRange {
  onlyFields(o, path, ['address_prefix', 'prefix_len'], issues);
  const addressPrefix = required(o, 'address_prefix', path, issues);
  const family = isIP(addressPrefix);
  const max = family === 6 ? 128 : 32;
  const prefixLen = u32Value(o, 'prefix_len') ?? 0;
  if (addressPrefix !== '' && family === 0) issues.add(joinPath(path, 'address_prefix'), `${JSON.stringify(addressPrefix)} is not an IPv4 or IPv6 address`);
  else if (prefixLen > max) issues.add(joinPath(path, 'prefix_len'), `${prefixLen} is above ${max} for an IPv${family} address`);
  return { addressPrefix, prefixLen };
}

function stringMatcher(o: ProtoObj, k: string, path: string, issues: Issues): StringMatcher | undefined {
  return issues.take(decodeStringMatcher(msg(o, k)!, joinPath(path, k)));
}

/** envoy.type.matcher.v3.ValueMatcher: null, double, string, bool, present and list (one_of) matches. */
function decodeValueMatcher(o: ProtoObj, path: string, issues: Issues): ValueMatcher {
  const kinds = ['null_match', 'double_match', 'string_match', 'bool_match', 'present_match', 'list_match'];
  const clean = onlyFields(o, path, kinds, issues, UNSUPPORTED);
  const k = oneOf(o, path, kinds, clean, issues);
  const p = joinPath(path, k ?? '');
  switch (k) {
    case 'double_match': {
      const d = msg(o, k)!;
      const dclean = onlyFields(d, p, ['range', 'exact'], issues);
      const range = msg(d, 'range');
      if (range) {
        onlyFields(range, joinPath(p, 'range'), ['start', 'end'], issues);
        const start = num(range, 'start');
        const end = num(range, 'end');
        if (!(start < end)) issues.add(joinPath(p, 'range'), `start ${start} must be below end ${end}`);
        return { kind: 'double_range', start, end };
      }
      requireOne(d, p, ['range', 'exact'], dclean, issues);
      return { kind: 'double', exact: num(d, 'exact') };
    }
    case 'string_match': {
      const matcher = stringMatcher(o, k, path, issues);
      return { kind: 'string', matcher: matcher! };
    }
    case 'bool_match':
      return { kind: 'bool', value: bool(o, k) };
    case 'present_match':
      return { kind: 'present', present: bool(o, k) };
    case 'list_match': {
      const l = msg(o, k)!;
      const lclean = onlyFields(l, p, ['one_of'], issues, UNSUPPORTED);
      const one = msg(l, 'one_of');
      if (!one) {
        if (lclean) issues.add(joinPath(p, 'one_of'), 'is required');
        return { kind: 'list_one_of', matcher: { kind: 'null' } };
      }
      return { kind: 'list_one_of', matcher: decodeValueMatcher(one, joinPath(p, 'one_of'), issues) };
    }
    case 'null_match':
      onlyFields(msg(o, k)!, p, [], issues);
      return { kind: 'null' };
    default:
      return { kind: 'null' };
  }
}

/** envoy.type.matcher.v3.MetadataMatcher: filter, path (keys only), value, invert. */
function decodeMetadataMatcher(o: ProtoObj, path: string, issues: Issues): MetadataMatcher {
  onlyFields(o, path, ['filter', 'path', 'value', 'invert'], issues, UNSUPPORTED);
  const filter = required(o, 'filter', path, issues);
  const segments = list(o, 'path');
  if (segments.length === 0) issues.add(joinPath(path, 'path'), 'at least one path segment is required');
  const keys = segments.map((s, i) => {
    const sp = joinPath(path, `path[${i}]`);
    onlyFields(s, sp, ['key'], issues);
    return required(s, 'key', sp, issues);
  });
  const v = msg(o, 'value');
  if (!v) issues.add(joinPath(path, 'value'), 'is required');
  const value = v ? decodeValueMatcher(v, joinPath(path, 'value'), issues) : ({ kind: 'null' } as const);
  return { filter, path: keys, value, invert: bool(o, 'invert') };
}

/** A Permission.Set / Principal.Set: at least one member (Envoy's validate rule). */
function setOf<T>(o: ProtoObj, key: string, path: string, issues: Issues, each: (x: ProtoObj, p: string) => T): T[] {
  onlyFields(o, path, [key], issues);
  const items = list(o, key);
  if (items.length === 0) issues.add(joinPath(path, key), 'at least one entry is required');
  return items.map((x, i) => each(x, joinPath(path, `${key}[${i}]`)));
}

/** The leaves Permission and Principal share: header, url_path, metadata. */
function sharedLeaf(o: ProtoObj, k: string, path: string, issues: Issues): SharedLeaf {
  const p = joinPath(path, k);
  if (k === 'header') return { kind: 'header', matcher: issues.take(decodeHeaderMatcher(msg(o, k)!, p))! };
  if (k === 'url_path') {
    const pm = msg(o, k)!;
    const clean = onlyFields(pm, p, ['path'], issues, UNSUPPORTED);
    if (pm.path === undefined) {
      if (clean) issues.add(joinPath(p, 'path'), 'is required');
      return { kind: 'url_path', matcher: { kind: 'exact', value: '', ignoreCase: false } };
    }
    return { kind: 'url_path', matcher: stringMatcher(pm, 'path', p, issues)! };
  }
  return { kind: 'metadata', matcher: decodeMetadataMatcher(msg(o, k)!, p, issues) };
}

/** How Permission and Principal spell their shared combinators, and their own leaves. */
interface TreeSpec<L> {
  /** Every oneof member, in the proto's order (the "one of ... is required" message lists them). */
  readonly members: readonly string[];
  readonly and: string;
  readonly or: string;
  readonly not: string;
  /** The Set message's list field: `rules` or `ids`. */
  readonly setKey: string;
  leaf(k: string, o: ProtoObj, path: string, issues: Issues): L;
}

function decodeTree<L>(o: ProtoObj, path: string, issues: Issues, spec: TreeSpec<L>): RuleTree<L> {
  const clean = onlyFields(o, path, spec.members, issues, UNSUPPORTED);
  const k = oneOf(o, path, spec.members, clean, issues);
  const p = joinPath(path, k ?? '');
  if (k === spec.and || k === spec.or) return { kind: k === spec.and ? 'and' : 'or', rules: setOf(msg(o, k)!, spec.setKey, p, issues, (x, xp) => decodeTree(x, xp, issues, spec)) };
  if (k === spec.not) return { kind: 'not', rule: decodeTree(msg(o, k)!, p, issues, spec) };
  if (k === 'any') {
    // Envoy's validate rule for `any` is `const: true`.
    if (o.any !== true) issues.add(joinPath(path, 'any'), 'must be true');
    return { kind: 'any' };
  }
  return k === undefined ? { kind: 'any' } : spec.leaf(k, o, path, issues);
}

const PERMISSION: TreeSpec<PermissionLeaf> = {
  members: ['and_rules', 'or_rules', 'any', 'header', 'url_path', 'destination_ip', 'destination_port', 'destination_port_range', 'metadata', 'not_rule', 'requested_server_name'],
  and: 'and_rules',
  or: 'or_rules',
  not: 'not_rule',
  setKey: 'rules',
  leaf(k, o, path, issues) {
    const p = joinPath(path, k);
    switch (k) {
      case 'destination_ip':
        return { kind: 'destination_ip', cidr: decodeCidr(msg(o, k)!, p, issues) };
      case 'destination_port': {
        const port = num(o, k);
        if (port > 65535) issues.add(p, `${port} is above 65535`);
        return { kind: 'destination_port', port };
      }
      case 'destination_port_range': {
        const r = msg(o, k)!;
        onlyFields(r, p, ['start', 'end'], issues);
        const start = num(r, 'start');
        const end = num(r, 'end');
        if (start > end) issues.add(p, `start ${start} is above end ${end}`);
        return { kind: 'destination_port_range', start, end };
      }
      case 'requested_server_name':
        return { kind: 'requested_server_name', matcher: stringMatcher(o, k, path, issues)! };
      default:
        return sharedLeaf(o, k, path, issues);
    }
  },
};

const PRINCIPAL: TreeSpec<PrincipalLeaf> = {
  members: ['and_ids', 'or_ids', 'any', 'authenticated', 'source_ip', 'direct_remote_ip', 'remote_ip', 'header', 'url_path', 'metadata', 'not_id'],
  and: 'and_ids',
  or: 'or_ids',
  not: 'not_id',
  setKey: 'ids',
  leaf(k, o, path, issues) {
    const p = joinPath(path, k);
    switch (k) {
      case 'authenticated': {
        const a = msg(o, k)!;
        onlyFields(a, p, ['principal_name'], issues);
        return { kind: 'authenticated', principalName: a.principal_name === undefined ? undefined : stringMatcher(a, 'principal_name', p, issues) };
      }
      // source_ip is the deprecated name of the connection's peer address: with no PROXY protocol here, direct_remote_ip.
      case 'source_ip':
      case 'direct_remote_ip':
        return { kind: 'direct_remote_ip', cidr: decodeCidr(msg(o, k)!, p, issues) };
      case 'remote_ip':
        return { kind: 'remote_ip', cidr: decodeCidr(msg(o, k)!, p, issues) };
      default:
        return sharedLeaf(o, k, path, issues);
    }
  },
};

export const decodePermission = (o: ProtoObj, path: string, issues: Issues): Permission => decodeTree(o, path, issues, PERMISSION);
export const decodePrincipal = (o: ProtoObj, path: string, issues: Issues): Principal => decodeTree(o, path, issues, PRINCIPAL);

function decodePolicy(name: string, o: ProtoObj, path: string, issues: Issues): RbacPolicy {
  onlyFields(o, path, ['permissions', 'principals'], issues, UNSUPPORTED);
  const permissions = list(o, 'permissions').map((x, i) => decodePermission(x, joinPath(path, `permissions[${i}]`), issues));
  const principals = list(o, 'principals').map((x, i) => decodePrincipal(x, joinPath(path, `principals[${i}]`), issues));
  // Envoy's validate rules: a policy needs at least one of each (an empty list would match nothing, silently).
  if (permissions.length === 0) issues.add(joinPath(path, 'permissions'), 'at least one permission is required');
  if (principals.length === 0) issues.add(joinPath(path, 'principals'), 'at least one principal is required');
  return { name, permissions, principals };
}

/** envoy.config.rbac.v3.RBAC: action (default ALLOW) and the policies map, in Envoy's (byte) order of names. */
export function decodeRbacRules(o: ProtoObj, path: string, issues: Issues): RbacRules {
  onlyFields(o, path, ['action', 'policies'], issues, UNSUPPORTED);
  const action = enumOf<RbacAction>(o, 'action', path, ['ALLOW', 'DENY', 'LOG'], 'ALLOW', issues);
  const map = (o.policies as Record<string, ProtoObj> | undefined) ?? {};
  // The default sort compares UTF-16 code units: byte order for the ASCII names policies have.
  const names = Object.keys(map).sort();
  const policies = names.map((n) => decodePolicy(n, map[n]!, joinPath(path, `policies[${JSON.stringify(n)}]`), issues));
  return { action, policies };
}

/**
 * The listener-level filter. RBACPerRoute (typed_per_filter_config) is not supported, so a route configuring it
 * is refused; the generic `matcher` / `shadow_matcher` API and CEL conditions are refused too.
 */
export const rbac: HttpFilterDecoder = {
  typeUrl: RBAC_TYPE_URL,
  decode(o, path) {
    const issues = new Issues();
    onlyFields(o, path, ['rules', 'shadow_rules', 'rules_stat_prefix', 'shadow_rules_stat_prefix', 'track_per_rule_stats'], issues, UNSUPPORTED);
    const r = msg(o, 'rules');
    const s = msg(o, 'shadow_rules');
    const rules = r && decodeRbacRules(r, joinPath(path, 'rules'), issues);
    const shadowRules = s && decodeRbacRules(s, joinPath(path, 'shadow_rules'), issues);
    return issues.result((): RbacConfig & Record<string, unknown> => ({
      rules,
      shadowRules,
      rulesStatPrefix: str(o, 'rules_stat_prefix'),
      shadowRulesStatPrefix: str(o, 'shadow_rules_stat_prefix'),
    }));
  },
};
