// DestinationRule connectionPool -> Cluster.circuit_breakers, connect_timeout and HttpProtocolOptions, as istiod
// writes them, per subset and per port (portLevelSettings), read back through the sidecar's own decoder.
import t from 'tap';
import type { ConnectionPoolSettings, TrafficPolicy } from '../../../src/control/mesh/types.js';
import { translate } from '../../../src/control/translate/index.js';
import type { Cluster } from '../../../src/model/types.js';
import { decodeResource } from '../../../src/xds/resources/index.js';
import { CLUSTER_TYPE_URL } from '../../../src/xds/protos.js';
import { OPTS, REVIEWS, bookinfo, dr, node, policy } from './helpers.js';

const NO_LIMIT = 4294967295;
const ISTIO_DEFAULTS = { maxConnections: NO_LIMIT, maxPendingRequests: NO_LIMIT, maxRequests: NO_LIMIT, maxRetries: NO_LIMIT, trackRemaining: true };

/** Every outbound cluster of reviews, decoded by the sidecar's decoder, for a DestinationRule with these policies. */
function clusters(top: Partial<TrafficPolicy> | undefined, v1?: Partial<TrafficPolicy>): Map<string, Cluster> {
  const mesh = bookinfo({
    destinationRules: top
      ? [dr('reviews', REVIEWS, { trafficPolicy: policy(top), subsets: [{ name: 'v1', labels: { version: 'v1' }, ...(v1 && { trafficPolicy: policy(v1) }) }, { name: 'v2', labels: { version: 'v2' } }] })]
      : [],
  });
  const out = new Map<string, Cluster>();
  for (const [name, bytes] of translate(mesh, node(), OPTS).resources.get(CLUSTER_TYPE_URL)!) {
    if (!name.endsWith(REVIEWS)) continue;
    const r = decodeResource(CLUSTER_TYPE_URL, bytes);
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    out.set(name, r.value as Cluster);
  }
  return out;
}

const POOL: ConnectionPoolSettings = {
  tcp: { maxConnections: 7, connectTimeoutMs: 250 },
  http: { http1MaxPendingRequests: 3, http2MaxRequests: 50, maxRetries: 4, maxRequestsPerConnection: 10, idleTimeoutMs: 30_000 },
};

t.test('no DestinationRule: istiod default thresholds (uint32 max, track_remaining) and its 10 s connect timeout', (t) => {
  const c = clusters(undefined).get(`outbound|9080||${REVIEWS}`)!;
  t.strictSame(c.circuitBreakers, ISTIO_DEFAULTS);
  t.equal(c.connectTimeoutMs, 10_000);
  t.equal(c.maxRequestsPerConnection, undefined);
  t.equal(c.idleTimeoutMs, 3_600_000);
  t.end();
});

t.test('every connectionPool field lands where istiod puts it', (t) => {
  const c = clusters({ connectionPool: POOL }).get(`outbound|9080||${REVIEWS}`)!;
  t.strictSame(c.circuitBreakers, { maxConnections: 7, maxPendingRequests: 3, maxRequests: 50, maxRetries: 4, trackRemaining: true });
  t.equal(c.connectTimeoutMs, 250, 'tcp.connectTimeout -> connect_timeout');
  t.equal(c.maxRequestsPerConnection, 10, 'http.maxRequestsPerConnection -> common_http_protocol_options');
  t.equal(c.idleTimeoutMs, 30_000, 'http.idleTimeout -> common_http_protocol_options.idle_timeout');
  t.equal(c.protocol, 'HTTP2', 'the protocol choice is kept next to the common options');
  t.end();
});

t.test('zero reads as unset (istiod cannot tell them apart); tcp.idleTimeout stands in for http.idleTimeout', (t) => {
  const c = clusters({ connectionPool: { tcp: { maxConnections: 0, idleTimeoutMs: 0 }, http: { http1MaxPendingRequests: 0, http2MaxRequests: 0, maxRetries: 0, maxRequestsPerConnection: 0 } } }).get(`outbound|9080||${REVIEWS}`)!;
  t.strictSame(c.circuitBreakers, ISTIO_DEFAULTS);
  t.equal(c.maxRequestsPerConnection, undefined);
  t.equal(c.idleTimeoutMs, 0, 'tcp.idleTimeout 0s: no idle timeout');
  const h1 = clusters({ tls: { mode: 'DISABLE' }, connectionPool: { tcp: { idleTimeoutMs: 5000 }, http: { maxRequestsPerConnection: 1 } } }).get(`outbound|9080||${REVIEWS}`)!;
  t.equal(h1.protocol, 'HTTP1', 'a plaintext HTTP port stays HTTP/1.1 with the common options');
  t.equal(h1.idleTimeoutMs, 5000);
  t.equal(h1.maxRequestsPerConnection, 1);
  t.end();
});

t.test('subsets: a subset connectionPool replaces the top-level one; other subsets inherit it', (t) => {
  const cs = clusters({ connectionPool: POOL }, { connectionPool: { http: { http2MaxRequests: 5 } } });
  t.strictSame(cs.get(`outbound|9080|v1|${REVIEWS}`)!.circuitBreakers, { ...ISTIO_DEFAULTS, maxRequests: 5 }, 'replaced as a whole, as istiod merges');
  t.equal(cs.get(`outbound|9080|v1|${REVIEWS}`)!.connectTimeoutMs, 10_000);
  t.strictSame(cs.get(`outbound|9080|v2|${REVIEWS}`)!.circuitBreakers, cs.get(`outbound|9080||${REVIEWS}`)!.circuitBreakers);
  t.equal(cs.get(`outbound|9080|v2|${REVIEWS}`)!.circuitBreakers!.maxConnections, 7);
  t.end();
});

t.test('portLevelSettings: the port policy replaces the whole policy for that port only', (t) => {
  const cs = clusters({ connectionPool: POOL, portLevelSettings: [{ port: 9081, connectionPool: { tcp: { maxConnections: 2 } } }] });
  t.equal(cs.get(`outbound|9080||${REVIEWS}`)!.circuitBreakers!.maxConnections, 7, 'port 9080: the top-level pool');
  t.strictSame(cs.get(`outbound|9081||${REVIEWS}`)!.circuitBreakers, { ...ISTIO_DEFAULTS, maxConnections: 2 }, 'port 9081: its own, nothing inherited');
  t.equal(cs.get(`outbound|9081||${REVIEWS}`)!.connectTimeoutMs, 10_000);
  t.equal(cs.get(`outbound|9081|v2|${REVIEWS}`)!.circuitBreakers!.maxConnections, 2, 'and its subsets too');
  const sub = clusters({ connectionPool: POOL }, { portLevelSettings: [{ port: 9081, connectionPool: { http: { maxRetries: 9 } } }] });
  t.equal(sub.get(`outbound|9081|v1|${REVIEWS}`)!.circuitBreakers!.maxRetries, 9, "a subset's portLevelSettings");
  t.equal(sub.get(`outbound|9080|v1|${REVIEWS}`)!.circuitBreakers!.maxRetries, 4, 'other ports of the subset keep the top-level pool');
  t.end();
});
