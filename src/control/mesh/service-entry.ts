// Decodes a ServiceEntry spec: hosts, ports, STATIC endpoints (inline or by workloadSelector).
import { joinPath } from '../../xds/json.js';
import { hostProblem, readExportTo, resolveHost } from './hosts.js';
import { Reader, dnsLabelProblem, keyPath, type Obj, type Shape } from './schema.js';
import type { PortProtocol, ServiceEntry, ServicePort, WorkloadEntrySpec } from './types.js';
import { decodeWorkloadEntrySpec } from './workload-entry.js';

/** istio.networking.v1.ServiceEntry; VIPs (addresses) and SAN checks (subjectAltNames) arrive later. */
const SERVICE_ENTRY: Shape = {
  fields: ['hosts', 'ports', 'location', 'resolution', 'endpoints', 'workloadSelector', 'exportTo'],
  notYet: ['addresses', 'subjectAltNames'],
};
const PORT: Shape = { fields: ['number', 'protocol', 'name', 'targetPort'] };
const SELECTOR: Shape = { fields: ['labels'] };

const PROTOCOLS: readonly PortProtocol[] = ['HTTP', 'HTTP2', 'GRPC', 'TCP', 'TLS', 'HTTPS'];
/** The rest of Istio's protocol.Parse list: real Istio protocols Outrigger does not carry. */
const OTHER_ISTIO_PROTOCOLS = ['GRPC-WEB', 'MONGO', 'REDIS', 'MYSQL', 'UDP', 'THRIFT', 'HBONE'];

const RESOLUTION_UNSUPPORTED = 'not supported (Outrigger resolves only STATIC endpoints: WorkloadEntries or inline endpoints with IP addresses)';

export type ServiceEntrySpec = Omit<ServiceEntry, 'kind' | 'meta'>;

export function decodeServiceEntry(r: Reader, v: unknown, path: string, ns: string, domainSuffix: string): ServiceEntrySpec | undefined {
  const o = r.object(v, path, SERVICE_ENTRY);
  if (!o) return undefined;
  const hosts = readHosts(r, o, path, ns, domainSuffix);
  const ports = readPorts(r, o, path);
  const location = r.enumOf(o, 'location', path, ['MESH_INTERNAL', 'MESH_EXTERNAL'] as const);
  // Istio's default resolution is NONE (pass through to the original destination), which needs traffic
  // capture Outrigger does not do; so the one supported mode is asked for explicitly rather than assumed.
  if (r.need(o, 'resolution', path)) {
    r.enumOf(o, 'resolution', path, ['STATIC'] as const, { NONE: RESOLUTION_UNSUPPORTED, DNS: RESOLUTION_UNSUPPORTED, DNS_ROUND_ROBIN: RESOLUTION_UNSUPPORTED });
  }
  const selector = o.workloadSelector === undefined || o.workloadSelector === null ? undefined : r.object(o.workloadSelector, joinPath(path, 'workloadSelector'), SELECTOR);
  const endpoints = r.list(o, 'endpoints', path, (e, p) => decodeWorkloadEntrySpec(r, e, p));
  if (selector && Array.isArray(o.endpoints) && o.endpoints.length > 0) r.issue(joinPath(path, 'workloadSelector'), 'only one of workloadSelector or endpoints can be set (Istio)');
  checkEndpointPorts(r, endpoints, o.endpoints, path, ports);
  readExportTo(r, o, path);
  return {
    hosts,
    ports,
    // Outrigger's default, not Istio's (MESH_EXTERNAL): a ServiceEntry here declares the mesh's own services.
    location: location ?? 'MESH_INTERNAL',
    resolution: 'STATIC',
    ...(selector && { workloadSelector: { labels: r.labels(selector, 'labels', joinPath(path, 'workloadSelector')) ?? {} } }),
    endpoints,
  };
}

function readHosts(r: Reader, o: Obj, path: string, ns: string, domainSuffix: string): string[] {
  if (!r.need(o, 'hosts', path)) return [];
  const seen = new Set<string>();
  const hosts = r.strings(o, 'hosts', path, (h) => {
    const problem = hostProblem(h);
    if (problem) return problem;
    // Istio takes ServiceEntry hosts literally: a short name here would never match the FQDN a VirtualService
    // or DestinationRule's `reviews` resolves to. Refusing it beats a route that silently goes nowhere.
    if (!h.includes('.')) return `short names are not expanded in ServiceEntry hosts (Istio takes them literally); write the FQDN, e.g. ${resolveHost(h, ns, domainSuffix)}`;
    if (seen.has(h)) return `duplicate host ${h}`;
    seen.add(h);
    return undefined;
  });
  if (Array.isArray(o.hosts) && o.hosts.length === 0) r.issue(joinPath(path, 'hosts'), 'must list at least one host');
  return hosts;
}

function readPorts(r: Reader, o: Obj, path: string): ServicePort[] {
  if (!r.need(o, 'ports', path)) return [];
  const names = new Set<string>();
  const numbers = new Set<number>();
  const ports = r.list(o, 'ports', path, (v, p) => {
    const po = r.object(v, p, PORT);
    if (!po) return undefined;
    for (const k of ['number', 'protocol', 'name']) r.need(po, k, p);
    const number = r.int(po, 'number', p, 1, 65535);
    const name = r.string(po, 'name', p, dnsLabelProblem);
    // Istio parses protocols case-insensitively (protocol.Parse); the model holds the canonical upper case.
    const protocol = r.string(po, 'protocol', p, protocolProblem)?.toUpperCase() as PortProtocol | undefined;
    const targetPort = r.int(po, 'targetPort', p, 1, 65535);
    if (number !== undefined && numbers.has(number)) r.issue(joinPath(p, 'number'), `port ${number} is listed twice`);
    if (name !== undefined && names.has(name)) r.issue(joinPath(p, 'name'), `port name ${name} is used twice`);
    if (number !== undefined) numbers.add(number);
    if (name !== undefined) names.add(name);
    return { number: number ?? 0, protocol: protocol ?? 'TCP', name: name ?? '', ...(targetPort !== undefined && { targetPort }) };
  });
  if (Array.isArray(o.ports) && o.ports.length === 0) r.issue(joinPath(path, 'ports'), 'must list at least one port');
  return ports;
}

function protocolProblem(p: string): string | undefined {
  const up = p.toUpperCase();
  if ((PROTOCOLS as readonly string[]).includes(up)) return undefined;
  if (OTHER_ISTIO_PROTOCOLS.includes(up)) return `protocol ${p} is not supported (one of ${PROTOCOLS.join(', ')})`;
  return `unknown protocol ${JSON.stringify(p)} (one of ${PROTOCOLS.join(', ')})`;
}

/** An inline endpoint's `ports` map names service ports; a name the service lacks is a typo that would route nowhere. */
function checkEndpointPorts(r: Reader, endpoints: readonly WorkloadEntrySpec[], raw: unknown, path: string, ports: readonly ServicePort[]): void {
  if (endpoints.length !== (Array.isArray(raw) ? raw.length : 0)) return; // an endpoint failed; its issues are reported
  endpoints.forEach((e, i) => {
    for (const name of Object.keys(e.ports)) {
      if (!ports.some((p) => p.name === name)) r.issue(keyPath(joinPath(path, `endpoints[${i}].ports`), name), `no port named ${name} in spec.ports`);
    }
  });
}
