// Decodes a security.istio.io/v1 (and v1beta1) PeerAuthentication spec, and composes the mTLS mode a workload gets.
import { joinPath } from '../../xds/json.js';
import { Reader, defined, type Shape } from './schema.js';
import { labelsMatch } from './selector.js';
import type { MtlsMode, PeerAuthentication } from './types.js';

/** Istio serves PeerAuthentication under security.istio.io at v1 and v1beta1 with the same schema. */

const SPEC: Shape = { fields: ['selector', 'mtls', 'portLevelMtls'] };
/** istio.type.v1beta1.WorkloadSelector */
const SELECTOR: Shape = { fields: ['matchLabels'] };
const MTLS: Shape = { fields: ['mode'] };
const MODES: readonly MtlsMode[] = ['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT'];

export type PeerAuthenticationSpec = Omit<PeerAuthentication, 'kind' | 'meta'>;

/**
 * The spec, refused as istiod's validation refuses it: unknown fields and modes, ports outside 1..65535, and
 * portLevelMtls without a selector ("mesh/namespace peer authentication cannot have port level mTLS": Istio only
 * honours port-level modes for the workloads a selector picks).
 */
export function decodePeerAuthentication(r: Reader, v: unknown, path: string): PeerAuthenticationSpec | undefined {
  const o = r.object(v ?? {}, path, SPEC);
  if (!o) return undefined;
  let selector: PeerAuthenticationSpec['selector'];
  if (o.selector !== undefined && o.selector !== null) {
    const sp = joinPath(path, 'selector');
    const s = r.object(o.selector, sp, SELECTOR);
    const labels = s && r.labels(s, 'matchLabels', sp);
    // An empty selector selects the whole namespace, as Istio reads it (len(matchLabels) == 0).
    if (labels && Object.keys(labels).length) selector = { matchLabels: labels };
  }
  const mtls = mode(r, o.mtls, joinPath(path, 'mtls'));
  const pp = joinPath(path, 'portLevelMtls');
  const ports = r.map(o, 'portLevelMtls', path, (pv, p, k) => {
    const port = /^[0-9]{1,5}$/.test(k) ? Number(k) : NaN;
    if (!(port >= 1 && port <= 65535)) return r.issue(p, `${JSON.stringify(k)} is not a port (1..65535)`);
    const m = mode(r, pv, p);
    return m === undefined ? undefined : ([port, m] as const);
  });
  if (ports && Object.keys(o.portLevelMtls as object).length === 0) r.issue(pp, 'port level mTLS, if defined, must have at least one element (Istio)');
  else if (ports && !selector) r.issue(pp, 'mesh/namespace peer authentication cannot have port level mTLS: portLevelMtls needs a selector (Istio)');
  const portLevelMtls = ports && Object.fromEntries(Object.values(ports));
  return defined({ selector, mtls: mtls ?? 'UNSET', portLevelMtls });
}

function mode(r: Reader, v: unknown, path: string): MtlsMode | undefined {
  if (v === undefined || v === null) return 'UNSET';
  const o = r.object(v, path, MTLS);
  if (!o) return undefined;
  return o.mode === undefined || o.mode === null ? 'UNSET' : r.enumOf(o, 'mode', path, MODES);
}

/** What a workload's inbound side enforces: a mode, per-port overrides (workload ports), and the policies it came from. */
export interface EffectiveMtls {
  readonly mode: Exclude<MtlsMode, 'UNSET'>;
  readonly perPort: ReadonlyMap<number, Exclude<MtlsMode, 'UNSET'>>;
  /** `<namespace>/<name>` of the policy that set `mode` (undefined: Istio's default, PERMISSIVE). */
  readonly source?: string;
  /** `<namespace>/<name>` of the workload policy that set the port-level modes. */
  readonly portSource?: string;
}

/**
 * Istio's oldest-first order among policies at one level (istiod sorts by creation time, then name, then
 * namespace). A document without metadata.creationTimestamp counts as the oldest, as istiod reads Kubernetes'
 * zero time; ties (e.g. none has one) are broken by name.
 */
function older(a: PeerAuthentication, b: PeerAuthentication): boolean {
  const ta = a.meta.creationTimestampMs ?? 0;
  const tb = b.meta.creationTimestampMs ?? 0;
  if (ta !== tb) return ta < tb;
  return a.meta.name < b.meta.name || (a.meta.name === b.meta.name && a.meta.namespace < b.meta.namespace);
}

const oldest = (ps: readonly PeerAuthentication[]) => ps.reduce<PeerAuthentication | undefined>((best, p) => (!best || older(p, best) ? p : best), undefined);
const id = (p: PeerAuthentication) => `${p.meta.namespace}/${p.meta.name}`;

/**
 * istiod's ComposePeerAuthentication for one workload: the mesh-wide policy (root namespace, no selector), then
 * the namespace's (no selector), then the workload's (a selector in its own namespace matching its labels); each
 * level's oldest policy counts, and a level whose mode is UNSET inherits the one above. PERMISSIVE when nothing
 * sets a mode. Port-level modes come from the workload policy only; an UNSET port inherits the workload's mode.
 */
export function composePeerAuthentication(
  policies: readonly PeerAuthentication[],
  workload: { readonly namespace: string; readonly labels: Readonly<Record<string, string>> },
  rootNamespace: string,
): EffectiveMtls {
  const unselected = (p: PeerAuthentication) => !p.selector;
  const mesh = oldest(policies.filter((p) => unselected(p) && p.meta.namespace === rootNamespace));
  const ns = workload.namespace === rootNamespace ? undefined : oldest(policies.filter((p) => unselected(p) && p.meta.namespace === workload.namespace));
  const wl = oldest(policies.filter((p) => p.selector && p.meta.namespace === workload.namespace && labelsMatch(p.selector.matchLabels, workload.labels)));
  let out: { mode: EffectiveMtls['mode']; source?: string } = { mode: 'PERMISSIVE' };
  for (const p of [mesh, ns, wl]) if (p && p.mtls !== 'UNSET') out = { mode: p.mtls, source: id(p) };
  const perPort = new Map<number, EffectiveMtls['mode']>();
  for (const [port, m] of Object.entries(wl?.portLevelMtls ?? {})) perPort.set(Number(port), m === 'UNSET' ? out.mode : m);
  return { ...out, perPort, ...(wl && perPort.size && { portSource: id(wl) }) };
}
