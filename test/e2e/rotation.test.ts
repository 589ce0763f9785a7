// Certificate files rotated under load: zero failed requests, new handshakes use the new SVID, /certs shows it.
import t from 'tap';
import tls from 'node:tls';
import { renameSync, writeFileSync } from 'node:fs';
import { FRONTEND_ID, REVIEWS_ID } from '../helpers/mesh.js';
import { steadyLoad } from '../helpers/load.js';
import { startTwoHop } from '../helpers/two-hop.js';
import { waitFor } from '../helpers/tools.js';

/** Atomic replacement, the way cert-manager, Kubernetes secrets and `outrigger certs renew` write. */
function atomicWrite(file: string, data: string): void {
  writeFileSync(`${file}.tmp`, data);
  renameSync(`${file}.tmp`, file);
}

async function certSerial(adminUrl: string): Promise<string> {
  const r = await fetch(`${adminUrl}/certs`);
  const b = (await r.json()) as { certificates: { serial_number: string }[] };
  return b.certificates[0]!.serial_number;
}

function presentedSerial(port: number, files: { chain: string; key: string; root: string }, pem: { chainPem: string; keyPem: string; rootPem: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    void files;
    const s = tls.connect({ host: '127.0.0.1', port, cert: pem.chainPem, key: pem.keyPem, ca: pem.rootPem, ALPNProtocols: ['h2'], checkServerIdentity: () => undefined }, () => {
      const serial = s.getPeerX509Certificate()!.serialNumber;
      s.destroy();
      resolve(serial);
    });
    s.on('error', reject);
  });
}

t.test('rotating both sidecars\' certificate files under load drops nothing', async (t) => {
  const m = await startTwoHop();
  t.teardown(() => m.close());
  const before = { a: await certSerial(m.a.adminUrl), b: await certSerial(m.b.adminUrl) };

  const load = steadyLoad(m.outPort);
  await waitFor(() => load.ok > 200, 'steady load');

  const fe = await m.pki.issue(FRONTEND_ID);
  const rv = await m.pki.issue(REVIEWS_ID);
  // Key first, then chain: the watcher must not adopt a half-rotated (mismatched) pair.
  atomicWrite(m.files.reviews.key, rv.keyPem);
  atomicWrite(m.files.reviews.chain, rv.chainPem);
  atomicWrite(m.files.frontend.key, fe.keyPem);
  atomicWrite(m.files.frontend.chain, fe.chainPem);

  await waitFor(async () => (await certSerial(m.b.adminUrl)) !== before.b, 'B to pick up its new certificate');
  await waitFor(async () => (await certSerial(m.a.adminUrl)) !== before.a, 'A to pick up its new certificate');
  const okAtSwap = load.ok;
  await waitFor(() => load.ok > okAtSwap + 200, 'load after the swap');
  await load.stop();

  t.same(load.failures, [], 'zero failed requests across the rotation');
  t.ok(load.ok > 400, `${load.ok} requests succeeded`);
  const presented = await presentedSerial(m.inPort, m.files.reviews, { chainPem: fe.chainPem, keyPem: fe.keyPem, rootPem: m.pki.rootPem });
  t.equal(presented.toLowerCase(), (await certSerial(m.b.adminUrl)).toLowerCase(), 'a new handshake gets the new certificate');
  t.not(presented.toLowerCase(), before.b.toLowerCase());
});
