import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import tls from 'node:tls';
import { FakeClock, systemClock } from '../../src/core/clock.js';
import { BACKDATE_MS, createRootCa, issueSvid } from '../../src/identity/ca.js';
import { checkX509Svid, reasonFromTlsError } from '../../src/identity/svid.js';
import { makePki } from '../helpers/pki.js';
import { tempDir } from '../helpers/mesh.js';
import { hasCommand } from '../helpers/tools.js';

const run = promisify(execFile);
const ID = 'spiffe://cluster.local/ns/default/sa/reviews';

t.test('issued SVIDs follow the X509-SVID spec', async (t) => {
  const clock = new FakeClock(Date.UTC(2026, 5, 1));
  const ca = await createRootCa({ trustDomain: 'cluster.local', commonName: 'root', clock });
  const s = await issueSvid(ca, { spiffeIds: [ID], clock, ttlMs: 3600_000 });
  const c = new X509Certificate(s.certPem);
  t.equal(c.subjectAltName, `URI:${ID}`, 'exactly one URI SAN');
  t.equal(c.ca, false);
  t.equal(Date.parse(c.validFrom), clock.now() - BACKDATE_MS - (clock.now() % 1000), 'notBefore backdated one minute');
  t.equal(Date.parse(c.validTo), clock.now() + 3600_000);
  t.same(c.keyUsage?.sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'], 'EKU serverAuth + clientAuth');
  t.ok(c.checkIssued(new X509Certificate(ca.certPem)));
  t.equal(checkX509Svid(c, { trustDomain: 'cluster.local' }).ok, true);
  const other = await issueSvid(ca, { spiffeIds: [ID], clock });
  t.not(other.serial, s.serial, 'random serials');
  t.ok(/^[0-7]/.test(s.serial), 'positive serial');
});

t.test('every X509-SVID rejection reason, from real certificates', async (t) => {
  const pki = await makePki();
  const check = async (opts: object, td = 'cluster.local') => checkX509Svid(new X509Certificate((await pki.issue(ID, opts)).certPem), { trustDomain: td });
  t.match(await check({ spiffeIds: [] }), { ok: false, reason: 'svid_uri_san_count' });
  t.match(await check({ spiffeIds: [ID, `${ID}2`] }), { ok: false, reason: 'svid_uri_san_count' });
  t.match(await check({ spiffeIds: ['https://example.com/x'] }), { ok: false, reason: 'svid_not_spiffe' });
  t.match(await check({ spiffeIds: ['spiffe://cluster.local'] }), { ok: false, reason: 'svid_not_spiffe' });
  t.match(await check({ isCa: true }), { ok: false, reason: 'svid_is_ca' });
  t.match(await check({}, 'other.td'), { ok: false, reason: 'trust_domain_mismatch' });
  const ok = await check({});
  t.ok(ok.ok && ok.id.uri === ID);
  t.same(
    ['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE', 'WEIRD'].map(reasonFromTlsError),
    ['expired', 'not_yet_valid', 'untrusted_chain', 'untrusted_chain', 'no_certificate', 'handshake'],
  );
});

t.test('openssl verifies issued chains, with and without an intermediate', { skip: !hasCommand('openssl') && 'openssl is not installed' }, async (t) => {
  const tmp = tempDir();
  t.teardown(tmp.cleanup);
  for (const intermediate of [false, true]) {
    const pki = await makePki({ intermediate });
    const s = await pki.issue(ID);
    const root = path.join(tmp.dir, 'root.pem');
    const chain = path.join(tmp.dir, 'chain.pem');
    const leaf = path.join(tmp.dir, 'leaf.pem');
    writeFileSync(root, pki.rootPem);
    writeFileSync(chain, s.chainPem);
    writeFileSync(leaf, s.certPem);
    const { stdout } = await run('openssl', ['verify', '-CAfile', root, '-untrusted', chain, '-purpose', 'sslclient', leaf]);
    t.match(stdout, /: OK/, `openssl verify (intermediate: ${intermediate})`);
  }
});

t.test('a real TLS server accepts our SVIDs and refuses another root\'s', async (t) => {
  const pki = await makePki({ intermediate: true });
  const foreign = await makePki();
  const server = await pki.issue('ns/default/sa/server');
  const srv = tls.createServer({ cert: server.chainPem, key: server.keyPem, ca: pki.rootPem, requestCert: true, rejectUnauthorized: true }, (s) => s.end('ok'));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.teardown(() => srv.close());
  const port = (srv.address() as { port: number }).port;
  const attempt = (cred: { chainPem: string; keyPem: string }) =>
    new Promise<string>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port, cert: cred.chainPem, key: cred.keyPem, ca: pki.rootPem, checkServerIdentity: () => undefined });
      let got = '';
      s.on('data', (c) => (got += c));
      s.on('end', () => resolve(got));
      s.on('error', (e: NodeJS.ErrnoException) => resolve(`error ${e.code}`));
    });
  t.equal(await attempt(await pki.issue('ns/default/sa/client')), 'ok');
  t.not(await attempt(await foreign.issue('ns/default/sa/client')), 'ok', 'a certificate from another root is never served');
  void systemClock;
});
