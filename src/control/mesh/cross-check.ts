// Checks across documents: names and hosts declared once, every route and policy pointing at something real.
import type { DestinationRule, MeshIssue, MeshResource, ServiceEntry, ServicePort, WorkloadEntry, WorkloadEntrySpec } from './types.js';

/** A decoded resource and the line finder of the document it came from. */
export interface Located {
  readonly res: MeshResource;
  readonly lineOf: (path: string) => number | undefined;
}

/** Hosts claimed by documents that failed on their own; references to them are not reported again. */
export interface Claims {
  readonly serviceHosts: ReadonlySet<string>;
  readonly subsetHosts: ReadonlySet<string>;
}

type Of<K extends MeshResource['kind']> = Located & { readonly res: Extract<MeshResource, { kind: K }> };

export function crossCheck(all: readonly Located[], claims: Claims): MeshIssue[] {
  const issues: MeshIssue[] = [];
  const add = (at: Located, path: string, message: string) => issues.push(issueAt(at, path, message));
  const byKind = <K extends MeshResource['kind']>(k: K) => all.filter((l): l is Of<K> => l.res.kind === k);
  const ses = byKind('ServiceEntry');
  const vss = byKind('VirtualService');
  const drs = byKind('DestinationRule');

  uniqueNames(all, add);
  const services = new Map<string, Of<'ServiceEntry'>>();
  for (const se of ses) {
    se.res.hosts.forEach((h, i) => {
      const first = services.get(h);
      if (first) add(se, `spec.hosts[${i}]`, `host ${h} is already declared by ${describeAt(first)}`);
      else services.set(h, se);
    });
  }
  const rules = new Map<string, Of<'DestinationRule'>>();
  for (const dr of drs) {
    const first = rules.get(dr.res.fqdn);
    if (first) add(dr, 'spec.host', `${dr.res.fqdn} already has ${describeAt(first)}; Outrigger takes one DestinationRule per host`);
    else rules.set(dr.res.fqdn, dr);
    checkServiceHost(dr.res.fqdn, dr, 'spec.host', services, claims, add);
    policyPorts(dr, services.get(dr.res.fqdn)?.res, add);
  }
  const routed = new Map<string, Of<'VirtualService'>>();
  for (const vs of vss) {
    vs.res.fqdns.forEach((f, i) => {
      const first = routed.get(f);
      if (first) add(vs, `spec.hosts[${i}]`, `${f} is already routed by ${describeAt(first)}; Outrigger takes one VirtualService per host`);
      else routed.set(f, vs);
      checkServiceHost(f, vs, `spec.hosts[${i}]`, services, claims, add);
    });
    routeTargets(vs, services, rules, claims, add);
  }
  endpointConflicts(ses, byKind('WorkloadEntry'), add);
  return issues;
}

function issueAt(at: Located, path: string, message: string): MeshIssue {
  const { kind, meta } = at.res;
  return { file: meta.file, line: at.lineOf(path) ?? meta.line, kind, name: meta.name, path, message };
}

/** `VirtualService default/reviews (mesh/reviews.yaml:3)`: where the other half of a conflict lives. */
function describeAt(l: Located): string {
  const m = l.res.meta;
  return `${l.res.kind} ${m.namespace}/${m.name} (${m.file}:${l.lineOf('metadata.name') ?? m.line})`;
}

type Add = (at: Located, path: string, message: string) => void;

/** Kubernetes identity: (kind, namespace, name) names one object; a second document would replace the first. */
function uniqueNames(all: readonly Located[], add: Add): void {
  const seen = new Map<string, Located>();
  for (const l of all) {
    const key = `${l.res.kind}/${l.res.meta.namespace}/${l.res.meta.name}`;
    const first = seen.get(key);
    if (first) add(l, 'metadata.name', `duplicate name: ${describeAt(first)} has the same kind, namespace and name`);
    else seen.set(key, l);
  }
}

function checkServiceHost(fqdn: string, at: Located, path: string, services: ReadonlyMap<string, unknown>, claims: Claims, add: Add): void {
  if (services.has(fqdn) || claims.serviceHosts.has(fqdn)) return;
  add(at, path, `no ServiceEntry declares host ${fqdn}`);
}

function routeTargets(vs: Of<'VirtualService'>, services: ReadonlyMap<string, Of<'ServiceEntry'>>, rules: ReadonlyMap<string, Of<'DestinationRule'>>, claims: Claims, add: Add): void {
  const ownPorts = vs.res.fqdns.flatMap((f) => services.get(f)?.res.ports ?? []);
  const ownKnown = vs.res.fqdns.every((f) => services.has(f));
  vs.res.http.forEach((route, i) => {
    route.match.forEach((m, k) => {
      if (m.port !== undefined && ownKnown && !ownPorts.some((p) => p.number === m.port)) {
        add(vs, `spec.http[${i}].match[${k}].port`, `port ${m.port} is not a port of ${vs.res.fqdns.join(', ')} (ports: ${portList(ownPorts)})`);
      }
    });
    // Mirror targets are destinations too: the shadow cluster must exist as much as the route's own.
    const targets = [...route.route.map(({ destination }, j) => ({ destination, at: `route[${j}].destination` })), ...(route.mirrors ?? [])];
    targets.forEach(({ destination: d, at: under }) => {
      const at = `spec.http[${i}].${under}`;
      const se = services.get(d.fqdn);
      if (!se) {
        if (!claims.serviceHosts.has(d.fqdn)) add(vs, `${at}.host`, `no ServiceEntry declares host ${d.fqdn}${d.fqdn === d.host ? '' : ` (${d.host} in namespace ${vs.res.meta.namespace})`}`);
        return;
      }
      if (d.port !== undefined && !se.res.ports.some((p) => p.number === d.port)) add(vs, `${at}.port.number`, `${d.fqdn} has no port ${d.port} (ports: ${portList(se.res.ports)})`);
      if (d.subset === undefined || claims.subsetHosts.has(d.fqdn)) return;
      const dr = rules.get(d.fqdn);
      if (!dr) add(vs, `${at}.subset`, `subset ${d.subset} needs a DestinationRule for ${d.fqdn}, and there is none`);
      else if (!dr.res.subsets.some((s) => s.name === d.subset)) add(vs, `${at}.subset`, `${describeAt(dr)} defines no subset ${d.subset} (subsets: ${dr.res.subsets.map((s) => s.name).join(', ') || 'none'})`);
    });
  });
}

const portList = (ports: readonly ServicePort[]) => ports.map((p) => p.number).join(', ');

/** portLevelSettings naming a port the service lacks would never apply (Istio ignores them silently). */
function policyPorts(dr: Of<'DestinationRule'>, se: ServiceEntry | undefined, add: Add): void {
  if (!se) return;
  const check = (policy: DestinationRule['trafficPolicy'], base: string) =>
    policy?.portLevelSettings.forEach((pl, i) => {
      if (!se.ports.some((p) => p.number === pl.port)) add(dr, `${base}.portLevelSettings[${i}].port.number`, `${dr.res.fqdn} has no port ${pl.port} (ports: ${portList(se.ports)})`);
    });
  check(dr.res.trafficPolicy, 'spec.trafficPolicy');
  dr.res.subsets.forEach((s, i) => check(s.trafficPolicy, `spec.subsets[${i}].trafficPolicy`));
}

/**
 * One address:port is one workload. Two entries of one service that resolve to the same endpoint would put
 * one sidecar in two places at once (two versions, two localities, two weights): the translator could only
 * pick one, so the second is refused. Endpoint port per Istio: the entry's port for the service port's name,
 * else targetPort, else the service port number.
 */
function endpointConflicts(ses: readonly Of<'ServiceEntry'>[], wes: readonly Of<'WorkloadEntry'>[], add: Add): void {
  const reported = new Set<string>();
  for (const se of ses) {
    const members: { at: Located; path: string; e: WorkloadEntrySpec }[] = se.res.workloadSelector
      ? wes.filter((we) => we.res.meta.namespace === se.res.meta.namespace && selects(se.res.workloadSelector!.labels, we.res)).map((we) => ({ at: we, path: 'spec.address', e: we.res }))
      : se.res.endpoints.map((e, i) => ({ at: se, path: `spec.endpoints[${i}].address`, e }));
    const seen = new Map<string, (typeof members)[number]>();
    for (const m of members) {
      for (const port of se.res.ports) {
        const endpoint = `${m.e.address}:${m.e.ports[port.name] ?? port.targetPort ?? port.number}`;
        const first = seen.get(endpoint);
        if (!first) {
          seen.set(endpoint, m);
          continue;
        }
        const key = `${describeAt(m.at)}${m.path}|${describeAt(first.at)}${first.path}`;
        if (reported.has(key)) continue;
        reported.add(key);
        const other = first.at === m.at ? first.path.replace('.address', '') : describeAt(first.at);
        add(m.at, m.path, `endpoint ${endpoint} of ${se.res.hosts[0]} is also ${other}; one address:port is one workload`);
      }
    }
  }
}

/** Istio's selector rule: the entry's labels contain every selector label. */
function selects(selector: Readonly<Record<string, string>>, we: WorkloadEntry): boolean {
  return Object.entries(selector).every(([k, v]) => we.labels[k] === v);
}
