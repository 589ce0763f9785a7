// The RBAC evaluator: envoy.config.rbac.v3.RBAC semantics over one request, compiled once per config version.
import { compileStringMatcher, headerReader, headerValueMatcher } from '../model/matchers.js';
import type { CidrRange, MetadataMatcher, PermissionLeaf, PrincipalLeaf, RbacAction, RbacRules, RuleTree, SharedLeaf, ValueMatcher } from '../model/rbac.js';
import type { HeaderMatcher, StringMatcher } from '../model/types.js';
import { PathIndex } from './rbac-index.js';

/** What RBAC looks at in one request: the HTTP head, the connection's addresses and peer, dynamic metadata. */
export interface RbacInput {
  readonly method: string;
  /** :path with its query string (header matchers on `:path` see it whole; url_path strips the query). */
  readonly path: string;
  readonly authority: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly directRemoteIp: string;
  /** The original client per x-forwarded-for; the sidecar passes the direct remote address (see README). */
  readonly remoteIp: string;
  readonly destinationIp: string;
  readonly destinationPort: number;
  /** The peer certificate's principal: URI SAN (the SPIFFE ID), else subject; undefined without a client certificate. */
  readonly principal: string | undefined;
  readonly sni: string | undefined;
  readonly metadata: Readonly<Record<string, Record<string, unknown>>> | undefined;
  /**
   * The connection is TLS. Envoy's `authenticated` matches any TLS connection (principal_name unset), the
   * subject "" of one without a client certificate otherwise; undefined = "TLS iff there is a principal".
   */
  readonly tls?: boolean;
}

export interface RbacDecision {
  readonly allowed: boolean;
  /** The effective policy id: the first matching policy in name order; undefined when none matched. */
  readonly matchedPolicy: string | undefined;
}

export interface RbacEngine {
  readonly action: RbacAction;
  /** Policy names in evaluation order (bounded: they come from config, never from requests). */
  readonly policyNames: readonly string[];
  evaluate(input: RbacInput): RbacDecision;
}

/** An address as numbers: IPv4 as one uint32, IPv6 as a 128-bit bigint; undefined when not an IP literal. */
type Ip = { readonly v4: true; readonly n: number } | { readonly v4: false; readonly n: bigint };

/** Dotted-quad IPv4, four decimal octets of 1-3 digits each (a char loop: this runs per request). */
function parseV4(s: string): number | undefined {
  let n = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i);
    if (ch === 46 /* . */) {
      if (digits === 0 || ++dots > 3) return undefined;
      n = n * 256 + octet;
      octet = digits = 0;
    } else if (ch >= 48 && ch <= 57 && digits < 3) {
      octet = octet * 10 + ch - 48;
      digits++;
      if (octet > 255) return undefined;
    } else return undefined;
  }
  return dots === 3 && digits > 0 ? n * 256 + octet : undefined;
}

function parseV6(s: string): bigint | undefined {
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  let groups: number[] = [];
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const parse = (h: string): number[] | undefined => {
    if (h === '') return [];
    const out: number[] = [];
    const segs = h.split(':');
    for (let i = 0; i < segs.length; i++) {
      const seg = segs[i]!;
      if (i === segs.length - 1 && seg.includes('.')) {
        const v4 = parseV4(seg);
        if (v4 === undefined) return undefined;
        out.push(v4 >>> 16, v4 & 0xffff);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(seg)) out.push(parseInt(seg, 16));
      else return undefined;
    }
    return out;
  };
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  if (!head || !tail) return undefined;
  if (halves.length === 2) {
    if (head.length + tail.length > 7) return undefined;
    groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  } else groups = head;
  if (groups.length !== 8) return undefined;
  let n = 0n;
  for (const g of groups) n = (n << 16n) | BigInt(g);
  return n;
}

const V4_MAPPED = 0xffff00000000n;

/**
 * An IP literal as numbers. An IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a dual-stack socket reports for an
 * IPv4 peer) is read as the IPv4 address, so an IPv4 CidrRange matches it.
 */
export function parseIp(s: string): Ip | undefined {
  if (!s.includes(':')) {
    const n = parseV4(s);
    return n === undefined ? undefined : { v4: true, n };
  }
  const n = parseV6(s);
  if (n === undefined) return undefined;
  if (n >> 32n === V4_MAPPED >> 32n) return { v4: true, n: Number(n & 0xffffffffn) };
  return { v4: false, n };
}

/** CidrRange -> a membership test; host bits of the prefix are ignored (Envoy masks them). */
export function compileCidr(c: CidrRange): (ip: Ip | undefined) => boolean {
  const base = parseIp(c.addressPrefix);
  if (!base) return () => false;
  if (base.v4) {
    // A range written as IPv4-mapped IPv6 (::ffff:10.0.0.0/104) counts its prefix over the 128 bits.
    const len = c.addressPrefix.includes(':') ? Math.max(0, c.prefixLen - 96) : Math.min(c.prefixLen, 32);
    // >>> 0 keeps the mask unsigned; a /0 mask is 0 (a shift by 32 would be a no-op in JS).
    const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
    const want = (base.n & mask) >>> 0;
    return (ip) => ip !== undefined && ip.v4 && ((ip.n & mask) >>> 0) === want;
  }
  const len = BigInt(Math.min(c.prefixLen, 128));
  const mask = len === 0n ? 0n : ((1n << len) - 1n) << (128n - len);
  const want = base.n & mask;
  return (ip) => ip !== undefined && !ip.v4 && (ip.n & mask) === want;
}

/** One request's view, built per evaluation; addresses and the query-less path are parsed only if a rule asks. */
class Ctx {
  private direct: Ip | undefined | null = null;
  private remote: Ip | undefined | null = null;
  private dest: Ip | undefined | null = null;
  private bare: string | undefined;

  constructor(readonly input: RbacInput) {}

  directIp(): Ip | undefined {
    if (this.direct === null) this.direct = parseIp(this.input.directRemoteIp);
    return this.direct;
  }

  remoteIp(): Ip | undefined {
    if (this.remote === null) this.remote = parseIp(this.input.remoteIp);
    return this.remote;
  }

  destIp(): Ip | undefined {
    if (this.dest === null) this.dest = parseIp(this.input.destinationIp);
    return this.dest;
  }

  /** PathMatcher's path: without query string and fragment (Envoy's PathUtil::removeQueryAndFragment). */
  pathNoQuery(): string {
    if (this.bare === undefined) {
      const p = this.input.path;
      const q = p.search(/[?#]/);
      this.bare = q < 0 ? p : p.slice(0, q);
    }
    return this.bare;
  }
}

/** A compiled rule: true when it matches the request. */
type Pred = (c: Ctx) => boolean;

function compileValue(v: ValueMatcher): (x: unknown) => boolean {
  switch (v.kind) {
    case 'null':
      return (x) => x === null;
    case 'double':
      return (x) => typeof x === 'number' && x === v.exact;
    case 'double_range':
      return (x) => typeof x === 'number' && x >= v.start && x < v.end;
    case 'string': {
      const p = compileStringMatcher(v.matcher);
      return (x) => typeof x === 'string' && p(x);
    }
    case 'bool':
      return (x) => x === v.value;
    case 'present':
      // Envoy's PresentMatcher: present_match && the value is set; present_match false never matches.
      return v.present ? (x) => x !== undefined : () => false;
    case 'list_one_of': {
      const m = compileValue(v.matcher);
      return (x) => Array.isArray(x) && x.some(m);
    }
  }
}

/** Envoy's Metadata::metadataValue: walk the keys through nested structs; anything else on the way is "not set". */
export function metadataValue(md: RbacInput['metadata'], filter: string, path: readonly string[]): unknown {
  let v: unknown = md?.[filter];
  for (const k of path) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return v;
}

function compileMetadata(m: MetadataMatcher): Pred {
  const value = compileValue(m.value);
  return (c) => value(metadataValue(c.input.metadata, m.filter, m.path)) !== m.invert;
}

/** The leaves Permission and Principal share. */
function compileShared(r: SharedLeaf): Pred {
  switch (r.kind) {
    case 'header': {
      const match = headerValueMatcher(r.matcher);
      const read = headerReader(r.matcher.name.toLowerCase());
      return (c) => match(read(c.input));
    }
    case 'url_path': {
      const p = compileStringMatcher(r.matcher);
      return (c) => p(c.pathNoQuery());
    }
    case 'metadata':
      return compileMetadata(r.matcher);
  }
}

const ALWAYS: Pred = () => true;

/** OR of compiled rules, a plain loop (Array.some's callback costs a megamorphic call per element). */
function some(preds: readonly Pred[]): Pred {
  if (preds.length === 1) return preds[0]!;
  return (c) => {
    for (let i = 0; i < preds.length; i++) if (preds[i]!(c)) return true;
    return false;
  };
}

function every(preds: readonly Pred[]): Pred {
  if (preds.length === 1) return preds[0]!;
  return (c) => {
    for (let i = 0; i < preds.length; i++) if (!preds[i]!(c)) return false;
    return true;
  };
}

/** Any node of either tree, as the cost model and the OR fusion read it. */
type Node = { readonly kind: string; readonly [k: string]: unknown };

const isRegex = (m: unknown) => (m as StringMatcher | undefined)?.kind === 'regex';

/**
 * Rough relative cost of a rule, so an AND tests its cheap members first (ports, then exact headers and paths,
 * regexes and metadata last). AND and OR of pure predicates do not depend on order: only the work done does.
 */
function cost(n: Node): number {
  switch (n.kind) {
    case 'any':
      return 0;
    case 'destination_port':
    case 'destination_port_range':
      return 1;
    case 'and':
    case 'or':
      return (n.rules as Node[]).reduce((sum, r) => sum + cost(r), 0);
    case 'not':
      return cost(n.rule as Node);
    case 'header': {
      const m = (n.matcher as HeaderMatcher).match;
      return m.kind === 'string' && isRegex(m.matcher) ? 20 : 2;
    }
    case 'url_path':
    case 'requested_server_name':
      return isRegex(n.matcher) ? 20 : 3;
    case 'authenticated':
      return isRegex(n.principalName) ? 20 : 3;
    case 'direct_remote_ip':
    case 'remote_ip':
    case 'destination_ip':
      return 4;
    default:
      return 6;
  }
}

const exactValue = (m: StringMatcher | undefined): string | undefined => (m && m.kind === 'exact' && !m.ignoreCase ? m.value : undefined);

/**
 * An OR whose members are all one kind of leaf that a Set answers in one lookup: istiod writes one OR per
 * AuthorizationPolicy field with one leaf per value (methods, ports, principals), so this is the common shape.
 */
function fusedOr(rules: readonly Node[]): Pred | undefined {
  if (rules.length < 2) return undefined;
  const kind = rules[0]!.kind;
  if (!rules.every((r) => r.kind === kind)) return undefined;
  switch (kind) {
    case 'destination_port': {
      const ports = new Set(rules.map((r) => r.port as number));
      return (c) => ports.has(c.input.destinationPort);
    }
    case 'header': {
      const ms = rules.map((r) => r.matcher as HeaderMatcher);
      const name = ms[0]!.name.toLowerCase();
      const values = ms.map((m) => (m.name.toLowerCase() === name && !m.invert && m.match.kind === 'string' ? exactValue(m.match.matcher) : undefined));
      if (values.includes(undefined)) return undefined;
      const set = new Set(values);
      const read = headerReader(name);
      return (c) => {
        const v = read(c.input);
        return v !== undefined && set.has(v);
      };
    }
    case 'authenticated': {
      const values = rules.map((r) => exactValue(r.principalName as StringMatcher | undefined));
      if (values.includes(undefined)) return undefined;
      const set = new Set(values);
      return (c) => isTls(c) && set.has(c.input.principal ?? '');
    }
    case 'url_path': {
      const ps = rules.map((r) => compileStringMatcher(r.matcher as StringMatcher));
      return (c) => {
        const path = c.pathNoQuery();
        for (let i = 0; i < ps.length; i++) if (ps[i]!(path)) return true;
        return false;
      };
    }
  }
  return undefined;
}

/** and / or / not / any, the same for permissions and principals; `leaf` compiles the kind's own leaves. */
function compileTree<L>(t: RuleTree<L>, leaf: (l: L) => Pred): Pred {
  const node = t as Node;
  switch (node.kind) {
    case 'any':
      return ALWAYS;
    case 'and':
    case 'or': {
      const rules = node.rules as Node[];
      if (node.kind === 'or') return fusedOr(rules) ?? some(rules.map((r) => compileTree(r as RuleTree<L>, leaf)));
      return every([...rules].sort((x, y) => cost(x) - cost(y)).map((r) => compileTree(r as RuleTree<L>, leaf)));
    }
    case 'not': {
      const inner = compileTree(node.rule as RuleTree<L>, leaf);
      return (c) => !inner(c);
    }
  }
  return leaf(t as L);
}

/** Envoy's AuthenticatedMatcher needs a TLS connection (undefined: TLS iff there is a peer principal). */
const isTls = (c: Ctx): boolean => c.input.tls ?? c.input.principal !== undefined;

function permissionLeaf(p: PermissionLeaf): Pred {
  switch (p.kind) {
    case 'destination_ip': {
      const m = compileCidr(p.cidr);
      return (c) => m(c.destIp());
    }
    case 'destination_port':
      return (c) => c.input.destinationPort === p.port;
    case 'destination_port_range':
      return (c) => c.input.destinationPort >= p.start && c.input.destinationPort < p.end;
    case 'requested_server_name': {
      // Envoy matches the requested server name, "" when the client sent no SNI.
      const m = compileStringMatcher(p.matcher);
      return (c) => m(c.input.sni ?? '');
    }
    default:
      return compileShared(p);
  }
}

function principalLeaf(p: PrincipalLeaf): Pred {
  switch (p.kind) {
    case 'authenticated': {
      // Envoy's AuthenticatedMatcher: no TLS never matches; no principal_name matches any TLS peer.
      if (!p.principalName) return isTls;
      const m = compileStringMatcher(p.principalName);
      return (c) => isTls(c) && m(c.input.principal ?? '');
    }
    case 'direct_remote_ip': {
      const m = compileCidr(p.cidr);
      return (c) => m(c.directIp());
    }
    case 'remote_ip': {
      const m = compileCidr(p.cidr);
      return (c) => m(c.remoteIp());
    }
    default:
      return compileShared(p);
  }
}


/**
 * envoy.config.rbac.v3.RBAC as Envoy's RoleBasedAccessControlEngineImpl evaluates it: a policy matches when some
 * permission and some principal match; the first matching policy (name order) is the effective policy id.
 * ALLOW allows iff a policy matches (no policies: deny all); DENY allows iff none matches (no policies: allow
 * all); LOG always allows and reports the match.
 */
export function compileRbac(rules: RbacRules): RbacEngine {
  const policies = rules.policies.map((p) => ({ name: p.name, perm: compileTree<PermissionLeaf>({ kind: 'or', rules: p.permissions }, permissionLeaf), princ: compileTree<PrincipalLeaf>({ kind: 'or', rules: p.principals }, principalLeaf) }));
  const action = rules.action;
  // Policies whose permissions name paths are skipped when the request's path matches none of them (house style 8).
  const index = new PathIndex(rules.policies.map((p) => p.permissions));
  const useIndex = index.useful;
  return {
    action,
    policyNames: rules.policies.map((p) => p.name),
    evaluate(input) {
      const c = new Ctx(input);
      if (useIndex) index.select(c.pathNoQuery());
      let matchedPolicy: string | undefined;
      for (let i = 0; i < policies.length; i++) {
        const p = policies[i]!;
        if ((!useIndex || index.inPlay(i)) && p.perm(c) && p.princ(c)) {
          matchedPolicy = p.name;
          break;
        }
      }
      const allowed = action === 'ALLOW' ? matchedPolicy !== undefined : action === 'DENY' ? matchedPolicy === undefined : true;
      return { allowed, matchedPolicy };
    },
  };
}

/** The parts of a policy name istiod generates: `ns[<namespace>]-policy[<name>]-rule[<index>]`. */
export interface IstioPolicyName {
  readonly namespace: string;
  readonly policy: string;
  readonly rule: number;
}

const ISTIO_NAME = /^ns\[([^\]]*)\]-policy\[(.*)\]-rule\[(\d+)\]$/;

/** Reads an istiod policy name; undefined for any other name (a hand-written config names policies freely). */
export function parseIstioPolicyName(name: string): IstioPolicyName | undefined {
  const m = ISTIO_NAME.exec(name);
  return m ? { namespace: m[1]!, policy: m[2]!, rule: Number(m[3]) } : undefined;
}
