// Host names in mesh config: which ones Outrigger accepts, and Istio's short-name to FQDN rule.
import { isIP } from 'node:net';
import { dnsSubdomainProblem, type Obj, type Reader } from './schema.js';

/** Istio's default DNS domain (MeshConfig / the Kubernetes cluster domain). */
export const DEFAULT_DOMAIN_SUFFIX = 'cluster.local';

/**
 * Istio's ResolveShortnameToFQDN: a host without a dot is a Kubernetes short name and resolves against the
 * namespace of the resource that names it (not the service's): `reviews` in `default` ->
 * `reviews.default.svc.cluster.local`. Anything with a dot is taken as written.
 */
export function resolveHost(host: string, namespace: string, domainSuffix: string): string {
  return host.includes('.') ? host : `${host}.${namespace}.svc.${domainSuffix}`;
}

/** Why `host` cannot name a service here, or undefined. Routing is by DNS name; wildcards and VIPs come later. */
export function hostProblem(host: string): string | undefined {
  if (host.includes('*')) return 'wildcard hosts are not supported yet';
  if (isIP(host) !== 0) return 'must be a DNS name, not an IP address';
  return dnsSubdomainProblem(host);
}

/**
 * exportTo (ServiceEntry, VirtualService, DestinationRule): Outrigger has no namespace visibility yet, every
 * resource is visible mesh-wide, which is Istio's default "*". Any narrower value would be silently widened,
 * so it is refused instead.
 */
export function readExportTo(r: Reader, o: Obj, path: string): void {
  r.strings(o, 'exportTo', path, (ns) => (ns === '*' ? undefined : `${JSON.stringify(ns)}: not supported yet (Outrigger exports every resource to all namespaces; only "*" is accepted)`));
}
