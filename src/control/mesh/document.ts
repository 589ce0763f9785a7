// One Kubernetes-style mesh document (apiVersion, kind, metadata, spec) into a model resource, by kind.
import type { FieldIssue } from '../../core/errors.js';
import { decodeAuthorizationPolicy } from './authorization-policy.js';
import { decodeDestinationRule } from './destination-rule.js';
import { resolveHost } from './hosts.js';
import { Reader, dnsLabelProblem, dnsSubdomainProblem, type Obj, type Shape } from './schema.js';
import { RATE_LIMIT_API_VERSION, decodeRateLimitPolicy } from './rate-limit-policy.js';
import { decodeRequestAuthentication } from './request-authentication.js';
import { decodePeerAuthentication } from './peer-authentication.js';
import { decodeServiceEntry } from './service-entry.js';
import { SECURITY_API_VERSIONS, type MeshResource, type Meta } from './types.js';
import { decodeVirtualService } from './virtual-service.js';
import { decodeWorkloadEntrySpec } from './workload-entry.js';

/** Istio serves these kinds under networking.istio.io at v1, v1beta1 and v1alpha3 with the same schema. */
export const API_GROUP = 'networking.istio.io';
export const API_VERSIONS = ['v1', 'v1beta1', 'v1alpha3'];

type SpecDecoder = (r: Reader, spec: unknown, path: string, ns: string, domainSuffix: string) => object | undefined;

/** The kinds Outrigger reads: adding one is a decoder file and a line here. */
const KINDS: Readonly<Record<MeshResource['kind'], SpecDecoder>> = {
  ServiceEntry: decodeServiceEntry,
  WorkloadEntry: (r, spec, path) => decodeWorkloadEntrySpec(r, spec, path),
  VirtualService: decodeVirtualService,
  DestinationRule: decodeDestinationRule,
  RateLimitPolicy: (r, spec, path) => decodeRateLimitPolicy(r, spec, path),
  RequestAuthentication: (r, spec, path) => decodeRequestAuthentication(r, spec, path),
  AuthorizationPolicy: (r, spec, path) => decodeAuthorizationPolicy(r, spec, path),
  PeerAuthentication: (r, spec, path) => decodePeerAuthentication(r, spec, path),
};
/** Kinds outside networking.istio.io, by API version: Outrigger's own group, and Istio's security.istio.io. */
const OWN_API_VERSIONS: Readonly<Partial<Record<MeshResource['kind'], readonly string[]>>> = {
  RateLimitPolicy: [RATE_LIMIT_API_VERSION],
  RequestAuthentication: SECURITY_API_VERSIONS,
  AuthorizationPolicy: SECURITY_API_VERSIONS,
  PeerAuthentication: SECURITY_API_VERSIONS,
};
/** Istio kinds a user may well drop into the directory, named so the error says "not yet" rather than "unknown". */
const OTHER_ISTIO_KINDS = ['Gateway', 'Sidecar', 'EnvoyFilter', 'WorkloadGroup', 'ProxyConfig', 'Telemetry', 'WasmPlugin'];

/** `status` is what `kubectl get -o yaml` prints back; the API server ignores it on apply, and so do we. */
const DOCUMENT: Shape = { fields: ['apiVersion', 'kind', 'metadata', 'spec', 'status'] };
/**
 * Kubernetes ObjectMeta. Server-set fields (uid, resourceVersion, …) are accepted and ignored, as kubectl
 * apply does; a key ObjectMeta lacks (a misspelt `namespace`) is an error, since it would change meaning.
 */
const METADATA: Shape = {
  fields: ['name', 'namespace', 'labels', 'annotations']
    .concat(['generateName', 'selfLink', 'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp'])
    .concat(['deletionGracePeriodSeconds', 'ownerReferences', 'finalizers', 'managedFields']),
};

export interface DecodedDocument {
  readonly kind?: string;
  readonly name?: string;
  readonly resource?: MeshResource;
  readonly issues: readonly FieldIssue[];
  /** Hosts a rejected document claims, so references to them are not reported a second time as dangling. */
  readonly claims?: { readonly serviceHosts: readonly string[]; readonly subsetHost?: string };
}

export function decodeDocument(raw: unknown, at: { file: string; line: number }, domainSuffix: string): DecodedDocument {
  const r = new Reader();
  const doc = r.object(raw, '', DOCUMENT);
  if (!doc) return { issues: [{ path: '', message: 'expected a Kubernetes resource (an object with apiVersion, kind, metadata and spec)' }] };
  const kind = typeof doc.kind === 'string' ? doc.kind : undefined;
  const metaRaw = doc.metadata as Obj | undefined;
  const name = typeof metaRaw?.name === 'string' ? metaRaw.name : undefined;
  const decodeSpec = kindDecoder(r, doc);
  const meta = metadata(r, doc, at);
  // The spec is checked even when the metadata is bad, so one run reports everything.
  const ns = meta?.namespace ?? (typeof metaRaw?.namespace === 'string' ? metaRaw.namespace : 'default');
  const spec = r.need(doc, 'spec', '') && decodeSpec ? decodeSpec(r, doc.spec, 'spec', ns, domainSuffix) : undefined;
  const resource = r.issues.result(() => ({ kind: kind as MeshResource['kind'], meta: meta!, ...spec }) as MeshResource);
  if (resource.ok) return { kind, name, resource: resource.value, issues: [] };
  return { kind, name, issues: resource.errors, claims: claims(doc, kind, ns, domainSuffix) };
}

function kindDecoder(r: Reader, doc: Obj): SpecDecoder | undefined {
  const kindOk = r.need(doc, 'kind', '') && r.stringValue(doc.kind, 'kind') !== undefined;
  const kind = doc.kind as string;
  if (kindOk && !Object.hasOwn(KINDS, kind)) {
    const known = Object.keys(KINDS).join(', ');
    r.issue('kind', OTHER_ISTIO_KINDS.includes(kind) ? `${kind} is not supported yet (Outrigger reads ${known})` : `unknown kind ${JSON.stringify(kind)} (Outrigger reads ${known})`);
  }
  if (r.need(doc, 'apiVersion', '')) {
    const own = kindOk && Object.hasOwn(OWN_API_VERSIONS, kind) ? OWN_API_VERSIONS[kind as MeshResource['kind']] : undefined;
    const expected = own ?? API_VERSIONS.map((v) => `${API_GROUP}/${v}`);
    r.stringValue(doc.apiVersion, 'apiVersion', (v) => (expected.includes(v) ? undefined : `unknown apiVersion ${JSON.stringify(v)} (expected ${expected.join(', ')})`));
  }
  return kindOk ? KINDS[kind as MeshResource['kind']] : undefined;
}

function metadata(r: Reader, doc: Obj, at: { file: string; line: number }): Meta | undefined {
  if (!r.need(doc, 'metadata', '')) return undefined;
  const m = r.object(doc.metadata, 'metadata', METADATA);
  if (!m) return undefined;
  r.need(m, 'name', 'metadata');
  const name = r.string(m, 'name', 'metadata', dnsSubdomainProblem);
  const namespace = r.string(m, 'namespace', 'metadata', dnsLabelProblem);
  r.labels(m, 'labels', 'metadata');
  r.map(m, 'annotations', 'metadata', (v, p) => r.stringValue(v, p));
  const created = r.string(m, 'creationTimestamp', 'metadata', (s) => (Number.isNaN(Date.parse(s)) ? `${JSON.stringify(s)} is not an RFC 3339 time` : undefined));
  // kubectl's default namespace when a manifest names none.
  return name === undefined ? undefined : { name, namespace: namespace ?? 'default', file: at.file, line: at.line, ...(created !== undefined && { creationTimestampMs: Date.parse(created) }) };
}

function claims(doc: Obj, kind: string | undefined, ns: string, domainSuffix: string): DecodedDocument['claims'] {
  const spec = doc.spec as Obj | undefined;
  if (typeof spec !== 'object' || spec === null) return undefined;
  if (kind === 'ServiceEntry' && Array.isArray(spec.hosts)) return { serviceHosts: spec.hosts.filter((h): h is string => typeof h === 'string') };
  if (kind === 'DestinationRule' && typeof spec.host === 'string') return { serviceHosts: [], subsetHost: resolveHost(spec.host, ns, domainSuffix) };
  return undefined;
}
