// Role-based access control as decoded from xDS: envoy.extensions.filters.http.rbac.v3.RBAC and envoy.config.rbac.v3.RBAC.
import type { HeaderMatcher, StringMatcher } from './types.js';

export const RBAC_TYPE_URL = 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC';

/** envoy.config.core.v3.CidrRange: the address as written (validated) and its prefix length. */
export interface CidrRange {
  readonly addressPrefix: string;
  readonly prefixLen: number;
}

/**
 * envoy.type.matcher.v3.ValueMatcher, the kinds istiod emits and a hand-written config uses. A value is looked up
 * in the request's dynamic metadata (plain JSON data, as jwt_authn writes it).
 */
export type ValueMatcher =
  | { readonly kind: 'null' }
  /** DoubleMatcher: `range` [start, end) or `exact`. */
  | { readonly kind: 'double'; readonly exact: number }
  | { readonly kind: 'double_range'; readonly start: number; readonly end: number }
  | { readonly kind: 'string'; readonly matcher: StringMatcher }
  | { readonly kind: 'bool'; readonly value: boolean }
  | { readonly kind: 'present'; readonly present: boolean }
  /** ListMatcher.one_of: the value is a list and some element matches. */
  | { readonly kind: 'list_one_of'; readonly matcher: ValueMatcher };

/** envoy.type.matcher.v3.MetadataMatcher: the value at `path` inside the `filter` namespace, optionally inverted. */
export interface MetadataMatcher {
  readonly filter: string;
  readonly path: readonly string[];
  readonly value: ValueMatcher;
  readonly invert: boolean;
}

/**
 * The combinators Permission and Principal share: and_rules / and_ids, or_rules / or_ids, not_rule / not_id, any.
 * One shape for both, so they compile and evaluate alike; `L` is the kind's own leaves.
 */
export type RuleTree<L> =
  | { readonly kind: 'any' }
  | { readonly kind: 'and' | 'or'; readonly rules: readonly RuleTree<L>[] }
  | { readonly kind: 'not'; readonly rule: RuleTree<L> }
  | L;

/** Leaves both kinds have. url_path is PathMatcher: the :path without query string and fragment. */
export type SharedLeaf =
  | { readonly kind: 'header'; readonly matcher: HeaderMatcher }
  | { readonly kind: 'url_path'; readonly matcher: StringMatcher }
  | { readonly kind: 'metadata'; readonly matcher: MetadataMatcher };

/** envoy.config.rbac.v3.Permission's own leaves: what the request does. */
export type PermissionLeaf =
  | SharedLeaf
  | { readonly kind: 'destination_ip'; readonly cidr: CidrRange }
  | { readonly kind: 'destination_port'; readonly port: number }
  /** Int32Range: start inclusive, end exclusive. */
  | { readonly kind: 'destination_port_range'; readonly start: number; readonly end: number }
  | { readonly kind: 'requested_server_name'; readonly matcher: StringMatcher };

/** envoy.config.rbac.v3.Principal's own leaves: who sends it. */
export type PrincipalLeaf =
  | SharedLeaf
  /** Authenticated: principal_name absent matches any TLS peer. */
  | { readonly kind: 'authenticated'; readonly principalName: StringMatcher | undefined }
  /** source_ip (deprecated) and direct_remote_ip: the connection's peer address. */
  | { readonly kind: 'direct_remote_ip'; readonly cidr: CidrRange }
  | { readonly kind: 'remote_ip'; readonly cidr: CidrRange };

export type Permission = RuleTree<PermissionLeaf>;
export type Principal = RuleTree<PrincipalLeaf>;

/** envoy.config.rbac.v3.Policy: matches when any permission AND any principal match. */
export interface RbacPolicy {
  readonly name: string;
  readonly permissions: readonly Permission[];
  readonly principals: readonly Principal[];
}

export type RbacAction = 'ALLOW' | 'DENY' | 'LOG';

/**
 * envoy.config.rbac.v3.RBAC. `policies` is a proto map; Envoy keeps it in a std::map and so evaluates (and
 * reports the effective policy id) in byte order of the names: the list is kept in that order.
 */
export interface RbacRules {
  readonly action: RbacAction;
  readonly policies: readonly RbacPolicy[];
}

/** The decoded envoy.extensions.filters.http.rbac.v3.RBAC (HttpFilterConfig.config). */
export interface RbacConfig {
  /** Enforced rules; absent = the filter enforces nothing (Envoy). */
  readonly rules: RbacRules | undefined;
  /** Evaluated and reported, never enforced. */
  readonly shadowRules: RbacRules | undefined;
  readonly rulesStatPrefix: string;
  readonly shadowRulesStatPrefix: string;
}
