// Sidecars with CA-issued SVIDs under steady load: startup, /certs, root rotation and short-TTL rotation, with zero failed requests.
import t from 'tap';
import { rotateRootMain } from '../../src/cli/certs-ops.js';
import { fetchStatus, renderStatus } from '../../src/cli/control.js';
import { REVIEWS_ID, FRONTEND_ID } from '../helpers/mesh.js';
import { steadyLoad } from '../helpers/load.js';
import { startCaMesh } from '../helpers/mesh-ca.js';
import { request } from '../helpers/two-hop.js';
import { waitFor } from '../helpers/tools.js';

interface CertsView {
  certificates: { name: string; spiffe_id: string; serial_number: string; cert_chain: { subject: string }[]; ca_cert: { subject: string }[] }[];
}

async function certs(adminUrl: string): Promise<CertsView['certificates'][number]> {
  const r = (await (await fetch(`${adminUrl}/certs`)).json()) as CertsView;
  return r.certificates.find((c) => c.name === 'default')!;
}

t.test('sidecars get SVIDs from the CA at startup and serve mTLS with them', async (t) => {
  const m = await startCaMesh();
  t.teardown(() => m.close());
  const r = await request(m.outPort, { path: '/echo' });
  t.equal(r.status, 200);
  t.match(m.app.seen.at(-1)?.headers['x-forwarded-client-cert'], `URI=${FRONTEND_ID}`, 'B saw A\'s CA-issued SVID');
  const a = await certs(m.a.adminUrl);
  t.equal(a.spiffe_id, FRONTEND_ID);
  t.equal(a.ca_cert.length, 1, 'ROOTCA bundle shown');
  t.equal(a.cert_chain.length, 1, 'the presented chain: a leaf signed by the self-signed root');
  t.equal(a.cert_chain[0]!.subject, 'O=cluster.local');
  t.equal((await certs(m.b.adminUrl)).spiffe_id, REVIEWS_ID);
  t.equal((await fetch(`${m.a.adminUrl}/ready`)).status, 200);
  t.match(await m.a.registry.getSingleMetricAsString('outrigger_cert_expiry_timestamp_seconds'), /secret="default",spiffe_id="spiffe:\/\/cluster.local\/ns\/default\/sa\/frontend"/);
  t.match(await m.a.registry.getSingleMetricAsString('outrigger_svid_renewals_total'), /result="ok"} 1/);
  await waitFor(() => m.ca.server.status().sidecars.length === 2, 'both sidecars watching the bundle');
});

t.test('root rotation under steady load: every step, zero failed requests', async (t) => {
  const m = await startCaMesh();
  t.teardown(() => m.close());
  await waitFor(() => m.ca.server.status().sidecars.filter((s) => s.bundle_current).length === 2, 'both sidecars on the bundle');
  const oldRoot = m.ca.server.authority.roots[0]!.fingerprint256;
  const before = await certs(m.a.adminUrl);
  const load = steadyLoad(m.outPort);
  await waitFor(() => load.ok > 100, 'steady load');

  const out: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((s: string) => (out.push(String(s)), true)) as typeof process.stdout.write;
  let code: number;
  try {
    code = await rotateRootMain(['--control', m.ca.monitoringUrl, '--timeout', '60s']);
  } finally {
    process.stdout.write = write;
  }
  const atEnd = load.ok;
  await waitFor(() => load.ok > atEnd + 100, 'load continues after the rotation');
  await load.stop();

  t.equal(code, 0, out.join(''));
  for (const phase of ['bundle_added', 'bundle_distributed', 'issuer_switched', 'renewed', 'old_root_removed']) t.match(out.join(''), phase);
  t.same(load.failures, [], `zero failed requests out of ${load.ok}`);
  const s = await fetchStatus(m.ca.monitoringUrl);
  t.equal(s.root_rotation.state, 'done');
  t.equal(s.ca.roots.length, 1);
  t.not(s.ca.roots[0]!.fingerprint, oldRoot, 'the old root is gone');
  t.match(renderStatus(s), /phase old_root_removed/);
  const after = await certs(m.a.adminUrl);
  t.not(after.serial_number, before.serial_number, 'A renewed from the new CA');
  t.equal(after.ca_cert.length, 1);
  t.match(await m.ca.registry.getSingleMetricAsString('outrigger_ca_root_rotation_phase'), /phase="old_root_removed"} 1/);
  // New handshakes now chain to the new root only.
  const r = await request(m.outPort, { agent: false });
  t.equal(r.status, 200);
});
