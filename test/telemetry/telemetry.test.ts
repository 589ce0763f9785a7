import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Registry } from 'prom-client';
import { seededRng } from '../../src/core/rng.js';
import { AccessLog, type AccessLogEntry } from '../../src/telemetry/access-log.js';
import { RequestRecorder, createMetrics, type RequestLabels } from '../../src/telemetry/metrics.js';

const labels: RequestLabels = {
  reporter: 'source',
  source_principal: 'spiffe://td/ns/a/sa/x',
  destination_principal: 'spiffe://td/ns/a/sa/y',
  destination_service: 'reviews',
  destination_cluster: 'outbound|9080||reviews',
  response_code: '200',
  response_flags: '-',
  request_protocol: 'http',
  grpc_response_status: '',
  connection_security_policy: 'unknown',
};

t.test('request metrics use Istio names, labels and buckets on the injected registry', async (t) => {
  const registry = new Registry();
  const rec = new RequestRecorder(createMetrics(registry));
  rec.record(labels, 12, 100, 2000);
  rec.record(labels, 3, 0, 10);
  rec.record({ ...labels, response_code: '503', response_flags: 'UF' }, 1, 0, 90);
  const text = await registry.metrics();
  t.match(text, /istio_requests_total\{reporter="source",source_principal="spiffe:\/\/td\/ns\/a\/sa\/x",.*response_code="200",response_flags="-".*\} 2/);
  t.match(text, /istio_requests_total\{.*response_code="503",response_flags="UF".*\} 1/);
  t.match(text, /istio_request_duration_milliseconds_bucket\{le="5",.*response_code="200".*\} 1/);
  t.match(text, /istio_request_bytes_sum\{.*response_code="200".*\} 100/);
  t.match(text, /istio_response_bytes_count\{.*response_code="200".*\} 2/);
  t.end();
});

const entry = (code: number, flags = '-'): AccessLogEntry => ({
  start_time: '2026-01-01T00:00:00.000Z',
  method: 'GET',
  path: '/x',
  protocol: 'HTTP/1.1',
  response_code: code,
  response_flags: flags,
  response_code_details: 'via_upstream',
  bytes_received: 0,
  bytes_sent: 2,
  duration: 1,
  upstream_service_time: 1,
  upstream_host: '127.0.0.1:1',
  upstream_locality: 'aws-us-east-1/us-east-1a/',
  upstream_cluster: 'c',
  upstream_transport_failure_reason: null,
  x_forwarded_for: null,
  user_agent: null,
  request_id: 'r',
  authority: 'a',
  downstream_remote_address: '127.0.0.1:2',
  downstream_peer_uri_san: null,
  upstream_peer_uri_san: null,
  route_name: null,
  listener: 'l',
});

t.test('access log: sampling keeps every error, writes JSON lines in Envoy field names', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'al-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'access.log');
  const log = new AccessLog({ target: file, sampleRate: 0.1 }, seededRng(7));
  let kept = 0;
  for (let i = 0; i < 1000; i++) if (log.wants(false)) kept++;
  t.ok(kept > 60 && kept < 140, `about 10 % of successes sampled (${kept})`);
  t.ok(Array.from({ length: 50 }, () => log.wants(true)).every(Boolean), 'errors always logged');
  log.write(entry(200));
  log.write(entry(503, 'UF'));
  await log.flush();
  const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as AccessLogEntry);
  t.equal(lines.length, 2);
  t.equal(lines[1]!.response_flags, 'UF');
  t.equal(lines[0]!.upstream_cluster, 'c');
  const off = new AccessLog({ target: 'off', sampleRate: 1 }, seededRng(1));
  t.equal(off.enabled, false);
  t.equal(off.wants(true), false, 'off means off');
});
