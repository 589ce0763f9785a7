// Who a connecting proxy is: the Envoy node (metadata in Istio's keys) -> ProxyNode, with its translation cache key.
import { isIP } from 'node:net';
import { errorMessage, type FieldIssue } from '../../core/errors.js';
import { fail, ok, type Result } from '../../core/result.js';
import { workloadId } from '../../identity/spiffe.js';
import type { NodeInfo } from '../../model/types.js';
import type { ProxyNode } from '../snapshot.js';

const MD = 'node.metadata';

/** A metadata key's field path; keys that are not plain words (label names like app.kubernetes.io/name) are quoted. */
const at = (base: string, key: string) => (/^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? `${base}.${key}` : `${base}[${JSON.stringify(key)}]`);

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

class Reader {
  readonly issues: FieldIssue[] = [];
  constructor(private readonly md: Readonly<Record<string, unknown>>) {}

  add(key: string, message: string): void {
    this.issues.push({ path: at(MD, key), message });
  }

  /** A string value; absent and "" both read as undefined (istio-agent leaves unknown values empty). */
  text(key: string): string | undefined {
    const v = this.md[key];
    if (v === undefined || v === null || v === '') return undefined;
    if (typeof v !== 'string') {
      this.add(key, `must be a string, not ${JSON.stringify(v)}`);
      return undefined;
    }
    return v;
  }

  /** LABELS: a Struct of string -> string (istio-agent copies the pod's labels). */
  labels(): Record<string, string> {
    const v = this.md.LABELS;
    if (v === undefined || v === null) return {};
    if (!isRecord(v)) {
      this.add('LABELS', 'must be a map of label name to value');
      return {};
    }
    const out: Record<string, string> = {};
    for (const [k, x] of Object.entries(v)) {
      if (typeof x === 'string') out[k] = x;
      else this.issues.push({ path: at(at(MD, 'LABELS'), k), message: `must be a string, not ${JSON.stringify(x)}` });
    }
    return out;
  }

  /** INSTANCE_IPS: istio-agent writes a comma-separated string; a list is accepted too. Every entry must be an IP. */
  ips(): string[] {
    const v = this.md.INSTANCE_IPS;
    if (v === undefined || v === null) return [];
    let raw: unknown[];
    if (typeof v === 'string') raw = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
    else if (Array.isArray(v)) raw = v;
    else {
      this.add('INSTANCE_IPS', 'must be a comma-separated string or a list of IP addresses');
      return [];
    }
    const out: string[] = [];
    raw.forEach((ip, i) => {
      if (typeof ip === 'string' && isIP(ip) !== 0) out.push(ip);
      else this.issues.push({ path: `${at(MD, 'INSTANCE_IPS')}[${i}]`, message: `${JSON.stringify(ip)} is not an IP address` });
    });
    return out;
  }

  /**
   * POD_PORTS: istio-agent writes the container ports as a JSON string of Kubernetes ContainerPort objects
   * ([{"name","containerPort","protocol"}]); an already decoded list is accepted too.
   */
  ports(): ProxyNode['appPorts'][number][] {
    const path = at(MD, 'POD_PORTS');
    let v = this.md.POD_PORTS;
    if (v === undefined || v === null || v === '') return [];
    if (typeof v === 'string') {
      try {
        v = JSON.parse(v) as unknown;
      } catch (e) {
        this.add('POD_PORTS', `is not valid JSON: ${errorMessage(e)}`);
        return [];
      }
    }
    if (!Array.isArray(v)) {
      this.add('POD_PORTS', 'must be a list of {"name","containerPort","protocol"} (or that list as a JSON string)');
      return [];
    }
    const out: ProxyNode['appPorts'][number][] = [];
    v.forEach((p: unknown, i) => {
      const pp = `${path}[${i}]`;
      if (!isRecord(p)) {
        this.issues.push({ path: pp, message: 'must be an object with containerPort' });
        return;
      }
      const port = p.containerPort;
      const okPort = typeof port === 'number' && Number.isInteger(port) && port >= 1 && port <= 65535;
      if (!okPort) this.issues.push({ path: `${pp}.containerPort`, message: port === undefined ? 'is required' : `${JSON.stringify(port)} is not a port (1-65535)` });
      for (const k of ['name', 'protocol'] as const) {
        if (p[k] !== undefined && typeof p[k] !== 'string') this.issues.push({ path: `${pp}.${k}`, message: 'must be a string' });
      }
      if (!okPort) return;
      out.push({ name: typeof p.name === 'string' ? p.name : '', port: port, protocol: typeof p.protocol === 'string' ? p.protocol : 'TCP' });
    });
    return out;
  }
}

/**
 * Reads a node the way istiod does. GENERATOR "grpc" marks a proxyless gRPC client (istiod's grpc generator);
 * anything else that is set is refused rather than guessed. NAMESPACE and SERVICE_ACCOUNT name the workload
 * identity spiffe://<td>/ns/<NAMESPACE>/sa/<SERVICE_ACCOUNT>: required for a sidecar, "default" for a proxyless
 * client that does not send them (one without mTLS has no identity to prove). A sidecar binds its listeners on
 * INSTANCE_IPS[0], so it must send that too.
 */
export function proxyNodeFrom(node: NodeInfo, opts: { trustDomain: string }): Result<ProxyNode, FieldIssue> {
  const r = new Reader(node.metadata);
  const issues = r.issues;
  if (node.id === '') issues.push({ path: 'node.id', message: 'is required' });
  const generator = r.text('GENERATOR');
  if (generator !== undefined && generator !== 'grpc') r.add('GENERATOR', `${JSON.stringify(generator)} is not supported: "grpc" marks a proxyless gRPC client; leave it unset for a sidecar`);
  const kind: ProxyNode['kind'] = generator === 'grpc' ? 'proxyless' : 'sidecar';
  const identity = (key: 'NAMESPACE' | 'SERVICE_ACCOUNT'): string => {
    const v = r.text(key);
    if (v !== undefined) return v;
    if (kind === 'proxyless') return 'default';
    // Only report a missing value, not one already refused as a non-string.
    if (node.metadata[key] === undefined || node.metadata[key] === null || node.metadata[key] === '') {
      r.add(key, 'is required for a sidecar: its identity is spiffe://<trust domain>/ns/<NAMESPACE>/sa/<SERVICE_ACCOUNT>');
    }
    return '';
  };
  const namespace = identity('NAMESPACE');
  const serviceAccount = identity('SERVICE_ACCOUNT');
  const td = r.text('TRUST_DOMAIN');
  if (td !== undefined && td !== opts.trustDomain) r.add('TRUST_DOMAIN', `is ${JSON.stringify(td)}, but this control server serves trust domain ${JSON.stringify(opts.trustDomain)}`);
  let spiffeId = '';
  if (namespace !== '' && serviceAccount !== '') {
    // The SPIFFE-ID path rules (SPIFFE-ID §2.2) apply to each segment; blame the key that broke them. A "/"
    // would make a valid ID of another shape (ns/a/b/sa/x), so each value must be exactly one segment.
    const valid = (key: string, ns: string, sa: string) => {
      const v = key === 'NAMESPACE' ? ns : sa;
      if (v.includes('/')) {
        r.add(key, `${JSON.stringify(v)} must be one segment of the SPIFFE ID path (no "/")`);
        return false;
      }
      try {
        workloadId(opts.trustDomain, ns, sa);
        return true;
      } catch (e) {
        r.add(key, errorMessage(e));
        return false;
      }
    };
    const nsOk = valid('NAMESPACE', namespace, 'default');
    if (valid('SERVICE_ACCOUNT', 'default', serviceAccount) && nsOk) spiffeId = workloadId(opts.trustDomain, namespace, serviceAccount).uri;
  }
  const labels = r.labels();
  const ips = r.ips();
  if (kind === 'sidecar' && ips.length === 0 && !issues.some((i) => i.path.startsWith(at(MD, 'INSTANCE_IPS')))) {
    r.add('INSTANCE_IPS', 'is required for a sidecar: its listeners bind the first address');
  }
  const appPorts = r.ports();
  const locality = node.locality ?? { region: '', zone: '', subZone: '' };
  const network = r.text('NETWORK');
  if (issues.length > 0) return fail(issues);
  return ok(
    Object.freeze({
      id: node.id,
      kind,
      namespace,
      serviceAccount,
      spiffeId,
      labels: Object.freeze(labels),
      locality,
      ...(network !== undefined && { network }),
      ips: Object.freeze(ips),
      appPorts: Object.freeze(appPorts.map((p) => Object.freeze(p))),
      cacheKey: cacheKey({ kind, namespace, serviceAccount, labels, locality, ...(network !== undefined && { network }), ips, appPorts }),
    }),
  );
}

/**
 * Everything translation reads from a node, in a fixed order. A sidecar's listeners and inbound clusters name
 * its own address, so its key has its IPs and ports; a proxyless client's resources do not depend on them, so
 * all the replicas of one deployment in one locality share one translation.
 */
function cacheKey(n: Omit<ProxyNode, 'id' | 'spiffeId' | 'cacheKey'>): string {
  const labels = Object.keys(n.labels)
    .sort()
    .map((k) => [k, n.labels[k]]);
  const own = n.kind === 'sidecar' ? [n.ips, n.appPorts.map((p) => [p.name, p.port, p.protocol])] : [];
  return JSON.stringify([n.kind, n.namespace, n.serviceAccount, labels, [n.locality.region, n.locality.zone, n.locality.subZone], n.network ?? '', ...own]);
}
