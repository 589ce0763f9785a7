// A hand-written Envoy RBAC config in a static bootstrap, enforced by a real sidecar behind real mTLS: callers are
// allowed or refused by their SPIFFE ID, a DENY filter overrides an ALLOW one, gRPC callers get PERMISSION_DENIED
// (a real @grpc/grpc-js client), shadow rules never refuse, and the refusal names its policy in the access log.
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { callEcho } from '../../src/cli/demo-apps.js';
import { systemRng } from '../../src/core/rng.js';
import { AccessLog, type AccessLogEntry } from '../../src/telemetry/access-log.js';
import { startEchoApp, startEchoGrpc } from '../helpers/apps.js';
import { FRONTEND_ID, REVIEWS_ID, TD, inboundBootstrap, outboundBootstrap, runSidecar, tempDir, writeCertFiles } from '../helpers/mesh.js';
import { makePki } from '../helpers/pki.js';
import { metricValue, request } from '../helpers/two-hop.js';

const RBAC = 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC';
const BATCH_ID = `spiffe://${TD}/ns/default/sa/batch`;
const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } };

/** What istiod would write for a DENY and an ALLOW AuthorizationPolicy, by hand, with a shadow set on the ALLOW filter. */
const HTTP_FILTERS = [
  {
    name: 'envoy.filters.http.rbac',
    typed_config: {
      '@type': RBAC,
      rules: { action: 'DENY', policies: { 'deny-admin': { permissions: [{ url_path: { path: { prefix: '/admin' } } }], principals: [{ any: true }] } } },
    },
  },
  {
    name: 'envoy.filters.http.rbac',
    typed_config: {
      '@type': RBAC,
      rules: {
        action: 'ALLOW',
        policies: {
          'allow-frontend': {
            permissions: [{ or_rules: { rules: [{ destination_port: 9080 }, { destination_port: 9090 }] } }],
            principals: [{ authenticated: { principal_name: { exact: FRONTEND_ID } } }],
          },
        },
      },
      shadow_rules: { action: 'ALLOW', policies: { 'shadow-get-only': { permissions: [{ header: { name: ':method', string_match: { exact: 'GET' } } }], principals: [{ any: true }] } } },
      shadow_rules_stat_prefix: 'shadow_',
    },
  },
  ROUTER,
];

/** Sidecar B: the inbound listener with the RBAC filters, HTTP to the echo app (9080) and gRPC to the Echo service (9090). */
function reviewsBootstrap(appPort: number, grpcPort: number, files: Parameters<typeof inboundBootstrap>[0]['files']) {
  const b = inboundBootstrap({ appPort, files }) as unknown as { static_resources: { listeners: any[]; clusters: any[] } }; // eslint-disable-line @typescript-eslint/no-explicit-any
  const hcm = b.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
  hcm.http_filters = HTTP_FILTERS;
  hcm.route_config.virtual_hosts[0].routes.unshift({ match: { prefix: '/outrigger.demo.v1.Echo/' }, route: { cluster: 'inbound|9090||', timeout: '0s' } });
  const grpcCluster = structuredClone(b.static_resources.clusters[0]);
  grpcCluster.name = grpcCluster.load_assignment.cluster_name = 'inbound|9090||';
  grpcCluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value = grpcPort;
  grpcCluster.typed_extension_protocol_options = {
    'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': { '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions', explicit_http_config: { http2_protocol_options: {} } },
  };
  b.static_resources.clusters.push(grpcCluster);
  return b;
}

t.test('RBAC from a static bootstrap over mTLS: by SPIFFE ID, DENY over ALLOW, gRPC, shadow, access log', async (t) => {
  const pki = await makePki();
  const tmp = tempDir('outrigger-rbac-e2e-');
  t.teardown(() => tmp.cleanup());
  const cert = async (name: string, id: string) => {
    const c = await pki.issue(id);
    return writeCertFiles(tmp.dir, name, { chainPem: c.chainPem, keyPem: c.keyPem, rootPem: pki.rootPem });
  };
  const app = await startEchoApp('reviews-app');
  t.teardown(() => app.close());
  const echo = await startEchoGrpc('reviews-grpc');
  t.teardown(() => echo.close());
  const logFile = path.join(tmp.dir, 'access.log');
  const accessLog = new AccessLog({ target: logFile, sampleRate: 1 }, systemRng);
  const b = await runSidecar(reviewsBootstrap(app.port, echo.port, await cert('reviews', REVIEWS_ID)), { drainMs: 200, accessLog });
  t.teardown(() => b.shutdown());
  const frontend = await runSidecar(outboundBootstrap({ peerPort: b.port('inbound'), files: await cert('frontend', FRONTEND_ID) }), { drainMs: 200 });
  t.teardown(() => frontend.shutdown());
  const batch = await runSidecar(outboundBootstrap({ peerPort: b.port('inbound'), files: await cert('batch', BATCH_ID) }), { drainMs: 200 });
  t.teardown(() => batch.shutdown());
  const fe = frontend.port('outbound');

  // Allowed by principal: frontend's SPIFFE ID, on the workload port the inbound route names.
  const ok = await request(fe, { path: '/echo' });
  t.equal(ok.status, 200, 'frontend is allowed');
  t.equal(app.seen.length, 1);

  // Another identity: refused by the ALLOW filter (no policy matched), before the app sees anything.
  const refused = await request(batch.port('outbound'), { path: '/echo' });
  t.equal(refused.status, 403, 'batch is refused');
  t.match(JSON.parse(refused.body), { code: 'rbac_denied', message: 'RBAC: access denied', request_id: String });
  t.equal(app.seen.length, 1, 'the app never saw the refused request');

  // DENY overrides ALLOW: frontend is allowed, but not on /admin.
  const admin = await request(fe, { path: '/admin/users' });
  t.equal(admin.status, 403, 'the DENY filter refuses frontend on /admin');

  // Shadow rules report, never refuse: a POST is shadow-denied and still served.
  t.equal((await request(fe, { path: '/echo', method: 'POST', body: 'x' })).status, 200, 'a shadow denial lets the request through');

  // gRPC: frontend's call is served; batch gets PERMISSION_DENIED from the proxy.
  const reply = await callEcho(`127.0.0.1:${fe}`, 'reviews', 'hi');
  t.equal(reply.message, 'hi');
  t.equal(reply.peer, FRONTEND_ID, 'the Echo service saw the verified caller');
  const err = await callEcho(`127.0.0.1:${batch.port('outbound')}`, 'reviews', 'hi').then(
    () => undefined,
    (e: grpc.ServiceError) => e,
  );
  t.equal(err?.code, grpc.status.PERMISSION_DENIED, 'gRPC callers get PERMISSION_DENIED');
  t.equal(err?.details, 'RBAC: access denied');

  // The access log names the effective policy; the operational log has one audit line per refusal.
  await accessLog.flush();
  const entries = readFileSync(logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as AccessLogEntry);
  const denied = entries.filter((e) => e.response_code_details.startsWith('rbac_access_denied'));
  t.strictSame(
    denied.map((e) => [e.path, e.response_code, e.response_code_details, e.downstream_peer_uri_san]),
    [
      ['/echo', 403, 'rbac_access_denied_matched_policy[none]', BATCH_ID],
      ['/admin/users', 403, 'rbac_access_denied_matched_policy[deny-admin]', FRONTEND_ID],
      ['/outrigger.demo.v1.Echo/Unary', 200, 'rbac_access_denied_matched_policy[none]', BATCH_ID],
    ],
    'gRPC refusals are HTTP 200 with grpc-status 7',
  );
  const audit = b.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'rbac' && l.decision === 'denied');
  t.strictSame(
    audit.map((l) => [l.policy, l.principal, l.path]),
    [
      ['none', BATCH_ID, '/echo'],
      ['deny-admin', FRONTEND_ID, '/admin/users'],
      ['none', BATCH_ID, '/outrigger.demo.v1.Echo/Unary'],
    ],
  );

  // Metrics: Envoy's rbac.allowed / denied / shadow_* as outrigger_rbac_decisions_total.
  const m = (action: string, policy: string) => metricValue(b, 'outrigger_rbac_decisions_total', { action, policy });
  t.equal(await m('denied', 'deny-admin'), 1);
  t.equal(await m('denied', 'none'), 2);
  t.equal(await m('allowed', 'allow-frontend'), 3, 'GET, POST and the gRPC call of frontend');
  t.equal(await m('shadow_denied', 'none'), 3, 'the POST, and both gRPC calls (POST)');
});
