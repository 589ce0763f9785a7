// The demo's mesh: a working copy of the bundled Istio YAML, one pod per WorkloadEntry (address, ports, identity,
// locality), each pod's sidecar bootstrap in Istio's ADS shape, and the scripted canary shift of a VirtualService.
import { mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, type Document, type YAMLMap, type YAMLSeq } from 'yaml';
import { controlSpiffeId } from '../identity/ca-api.js';
import type { MeshConfig, PortProtocol } from '../control/mesh/types.js';
import { meshIndex } from '../control/translate/mesh-index.js';
import { UsageError } from './args.js';

/** src/cli and dist/cli are both two levels below the package root. */
export const BUNDLED_MESH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../examples/mesh');

/** Istio's ports (ARCHITECTURE "Contracts"), on every pod's own loopback address and on the control server's. */
export const PORTS = { admin: 15000, outbound: 15001, inbound: 15006, xds: 15010, xdsTls: 15012, monitoring: 15014 } as const;

/** Where the control server listens before --ip-offset: its own loopback address, apart from every pod's. */
export const CONTROL_IP = '127.0.0.2';

const IPV4_LOOPBACK = /\b127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\b/g;

/**
 * Moves a loopback address `offset` blocks up its second octet (127.10.2.1 + 100 = 127.110.2.1), so a second
 * demo, or a test next to other tests, can run with the same ports on addresses nobody else binds.
 */
export function shiftIp(ip: string, offset: number): string {
  return ip.replace(IPV4_LOOPBACK, (all, a: string, b: string, c: string) => {
    const second = Number(a) + offset;
    if (second > 255) throw new UsageError(`--ip-offset ${offset}: ${all} would become 127.${second}.${b}.${c}, which is not an address; use a smaller offset`);
    return `127.${second}.${b}.${c}`;
  });
}

/**
 * Copies the mesh YAML into `dest` (flat: the bundled directory has no subdirectories), every 127.x.y.z in it
 * shifted by `offset`. The control server watches the copy, so the demo, and a user, can edit it live.
 */
export function copyMesh(src: string, dest: string, offset: number): void {
  mkdirSync(dest, { recursive: true });
  let names: string[];
  try {
    names = readdirSync(src).sort();
  } catch (e) {
    throw new UsageError(`--mesh: cannot read the directory ${src}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  for (const name of names) {
    if (!/\.(ya?ml|json)$/.test(name)) continue;
    const text = readFileSync(path.join(src, name), 'utf8');
    writeFileSync(path.join(dest, name), offset ? shiftIp(text, offset) : text);
  }
}

export interface AppPort {
  /** The service port's name and protocol, and the port the app listens on (Istio's target port). */
  readonly name: string;
  readonly port: number;
  readonly protocol: PortProtocol;
  /** How callers address it: the service's host and port (`reviews.default.svc.cluster.local`, 9081). */
  readonly host: string;
  readonly servicePort: number;
}

/** One pod of the demo: a WorkloadEntry played by a small app and its own sidecar on the entry's address. */
export interface PodPlan {
  /** The WorkloadEntry's name, e.g. reviews-v2-gcp-us-east4. */
  readonly name: string;
  readonly namespace: string;
  /** labels.app and labels.version, which choose what the app does and say what it answers. */
  readonly app: string;
  readonly version: string;
  readonly ip: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly locality: { readonly region: string; readonly zone: string; readonly subZone: string };
  readonly serviceAccount: string;
  readonly spiffeId: string;
  /** The app's ports: each HTTP/gRPC port of each service selecting the entry, at Istio's target port. */
  readonly ports: readonly AppPort[];
}

/**
 * Every WorkloadEntry as a pod. Its app listens on the ports its services route to (WorkloadEntry.ports[<name>]
 * ?? targetPort ?? number, as the translator's inbound clusters do); its identity is the entry's serviceAccount
 * (Istio's "default" when unset), so the sidecar proves exactly the SPIFFE ID its callers are told to expect.
 */
export function planPods(mesh: MeshConfig, trustDomain: string): PodPlan[] {
  const services = meshIndex(mesh).services;
  return mesh.workloadEntries.map((we) => {
    const ports = new Map<number, AppPort>();
    for (const svc of services) {
      if (!svc.endpoints.some((e) => e.spec === we)) continue;
      for (const p of svc.httpPorts) {
        const port = we.ports[p.name] ?? p.targetPort ?? p.number;
        if (!ports.has(port)) ports.set(port, { name: p.name, port, protocol: p.protocol, host: svc.host, servicePort: p.number });
      }
    }
    const serviceAccount = we.serviceAccount ?? 'default';
    return {
      name: we.meta.name,
      namespace: we.meta.namespace,
      app: we.labels.app ?? we.meta.name,
      version: we.labels.version ?? '',
      ip: we.address,
      labels: we.labels,
      locality: we.localityParts,
      serviceAccount,
      spiffeId: `spiffe://${trustDomain}/ns/${we.meta.namespace}/sa/${serviceAccount}`,
      ports: [...ports.values()],
    };
  });
}

const addr = (ip: string, port: number) => ({ socket_address: { address: ip, port_value: port } });
const ADS = { ads: {}, resource_api_version: 'V3' };
const TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';
const HTTP_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

export interface PodFiles {
  /** The control server's trust bundle at start: what a pod trusts the CA and xDS server with. */
  readonly rootCert: string;
  /** A single-use bootstrap token for the pod's first SVID. */
  readonly token: string;
}

/**
 * One pod's Envoy v3 bootstrap, as istio-agent writes it for Envoy: no static listeners; node metadata in Istio's
 * keys (who the workload is, its address, labels and ports, where the CA is); listeners, routes, clusters and
 * endpoints over ADS from the static cluster `xds-grpc` on the control server's 15012, over mTLS with the
 * workload's own SVID (SDS `default`) and the mesh's roots (SDS `ROOTCA`), the server pinned to its SPIFFE ID.
 */
export function podBootstrap(p: PodPlan, o: { controlIp: string; trustDomain: string; files: PodFiles }): object {
  return {
    node: {
      // Istio's node id: sidecar~<pod ip>~<pod>.<namespace>~<namespace>.svc.<domain>.
      id: `sidecar~${p.ip}~${p.name}.${p.namespace}~${p.namespace}.svc.cluster.local`,
      cluster: `${p.app}.${p.namespace}`,
      locality: { region: p.locality.region, zone: p.locality.zone, sub_zone: p.locality.subZone },
      metadata: {
        NAMESPACE: p.namespace,
        SERVICE_ACCOUNT: p.serviceAccount,
        INSTANCE_IPS: p.ip,
        LABELS: p.labels,
        // Kubernetes ContainerPort objects as a JSON string, as istio-agent passes POD_PORTS.
        POD_PORTS: JSON.stringify(p.ports.map((x) => ({ name: x.name, containerPort: x.port, protocol: 'TCP' }))),
        TRUST_DOMAIN: o.trustDomain,
        CA_ADDR: `${o.controlIp}:${PORTS.xdsTls}`,
        CA_ROOT_CERT: o.files.rootCert,
        BOOTSTRAP_TOKEN: o.files.token,
      },
    },
    admin: { address: addr(p.ip, PORTS.admin) },
    dynamic_resources: {
      ads_config: { api_type: 'GRPC', transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: 'xds-grpc' } }], set_node_on_first_message_only: true },
      lds_config: ADS,
      cds_config: ADS,
    },
    static_resources: {
      clusters: [
        {
          name: 'xds-grpc',
          type: 'STATIC',
          connect_timeout: '1s',
          load_assignment: { cluster_name: 'xds-grpc', endpoints: [{ lb_endpoints: [{ endpoint: { address: addr(o.controlIp, PORTS.xdsTls) } }] }] },
          typed_extension_protocol_options: { [HTTP_OPTIONS]: { '@type': `type.googleapis.com/${HTTP_OPTIONS}`, explicit_http_config: { http2_protocol_options: {} } } },
          transport_socket: {
            name: 'envoy.transport_sockets.tls',
            typed_config: {
              '@type': TLS,
              common_tls_context: {
                alpn_protocols: ['h2'],
                tls_certificate_sds_secret_configs: [{ name: 'default' }],
                combined_validation_context: {
                  default_validation_context: { match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { exact: controlSpiffeId(o.trustDomain) } }] },
                  validation_context_sds_secret_config: { name: 'ROOTCA' },
                },
              },
            },
          },
        },
      ],
    },
  };
}

/** One destination's share of a route before and after a rewrite. */
export interface WeightShare {
  readonly subset: string;
  readonly before: number;
  readonly after: number;
}

export interface CanaryShift {
  readonly file: string;
  /** The rewritten http route's name (or its index). */
  readonly route: string;
  readonly weights: readonly WeightShare[];
}

const isVirtualService = (d: Document, name: string, namespace: string) =>
  d.get('kind') === 'VirtualService' && d.getIn(['metadata', 'name']) === name && (d.getIn(['metadata', 'namespace']) ?? 'default') === namespace;

/**
 * Rewrites the weighted routes of VirtualService `name` in `dir` to an even split (the canary's next step, e.g.
 * 90/10 to 50/50), keeping the file's comments and layout. The write is atomic, as a config management tool
 * should do it: a dot file the loader skips, then rename(2) over the original, so the watcher never reads half
 * a file. Undefined when no such VirtualService has a route with two or more destinations.
 */
export function shiftCanary(dir: string, vs: { name: string; namespace: string }): CanaryShift | undefined {
  for (const name of readdirSync(dir).sort()) {
    if (!/\.ya?ml$/.test(name) || name.startsWith('.')) continue;
    const file = path.join(dir, name);
    const docs = parseAllDocuments(readFileSync(file, 'utf8'));
    const doc = docs.find((d) => isVirtualService(d, vs.name, vs.namespace));
    if (!doc) continue;
    const http = doc.getIn(['spec', 'http']) as YAMLSeq<YAMLMap> | undefined;
    let shifted: CanaryShift | undefined;
    http?.items.forEach((r, i) => {
      const route = r.get('route') as YAMLSeq<YAMLMap> | undefined;
      if (shifted || !route || route.items.length < 2) return;
      const n = route.items.length;
      const weights = route.items.map((d, j) => {
        // Istio's weights are integers summing to 100: the remainder goes to the first destination.
        const after = Math.floor(100 / n) + (j === 0 ? 100 % n : 0);
        const before = Number(d.get('weight') ?? 0);
        d.set('weight', after);
        return { subset: String(d.getIn(['destination', 'subset']) ?? d.getIn(['destination', 'host'])), before, after };
      });
      shifted = { file, route: String(r.get('name') ?? i), weights };
    });
    if (!shifted) return undefined;
    const tmp = path.join(dir, `.${name}.tmp`);
    writeFileSync(tmp, docs.map((d) => d.toString({ indentSeq: false })).join(''));
    renameSync(tmp, file);
    return shifted;
  }
  return undefined;
}
