// Test PKI for the benchmark, made with the openssl CLI at run time: one ECDSA P-256 root and two X509-SVID
// leaves (frontend = hop A's client identity, reviews = hop B's server identity), laid out like Istio's
// /etc/certs (root-cert.pem, <name>/cert-chain.pem, <name>/key.pem).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { run } from './procs.mjs';

export const TRUST_DOMAIN = 'cluster.local';
export const IDENTITIES = {
  frontend: `spiffe://${TRUST_DOMAIN}/ns/default/sa/frontend`,
  reviews: `spiffe://${TRUST_DOMAIN}/ns/default/sa/reviews`,
};
/**
 * DNS names carried next to the URI SAN. X509-SVID §2 allows other SAN types beside the single URI SAN;
 * nginx (proxy_ssl_verify) and HAProxy (verifyhost) can only check a host name, not a URI SAN, so each leaf
 * also carries one DNS SAN that those proxies verify. Outrigger checks the SPIFFE URI SAN.
 */
export const DNS_NAMES = {
  frontend: 'frontend.default.svc.cluster.local',
  reviews: 'reviews.default.svc.cluster.local',
};

async function openssl(args) {
  const r = await run('openssl', args);
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r;
}

/** Generate the PKI under dir/certs; returns absolute paths. */
export async function makeCerts(dir) {
  const d = path.join(dir, 'certs');
  mkdirSync(d, { recursive: true });
  const root = { cert: path.join(d, 'root-cert.pem'), key: path.join(d, 'root-key.pem') };
  const rootExt = path.join(d, 'root.ext');
  writeFileSync(rootExt, [
    'basicConstraints=critical,CA:TRUE',
    'keyUsage=critical,keyCertSign,cRLSign',
    'subjectKeyIdentifier=hash',
  ].join('\n') + '\n');
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', root.key]);
  await openssl(['req', '-x509', '-new', '-key', root.key, '-sha256', '-days', '2', '-subj', '/O=outrigger-bench/CN=bench root',
    '-extensions', 'v3_ca', '-config', opensslConf(d, rootExt), '-out', root.cert]);

  const leaves = {};
  for (const name of Object.keys(IDENTITIES)) {
    const ld = path.join(d, name);
    mkdirSync(ld, { recursive: true });
    const key = path.join(ld, 'key.pem');
    const csr = path.join(ld, 'req.csr');
    const cert = path.join(ld, 'cert-chain.pem');
    const ext = path.join(ld, 'leaf.ext');
    // X509-SVID: exactly one URI SAN, CA:false, digitalSignature, no keyCertSign; EKU both ways (mTLS).
    writeFileSync(ext, [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyAgreement',
      'extendedKeyUsage=serverAuth,clientAuth',
      `subjectAltName=URI:${IDENTITIES[name]},DNS:${DNS_NAMES[name]}`,
      'subjectKeyIdentifier=hash',
      'authorityKeyIdentifier=keyid',
    ].join('\n') + '\n');
    await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key]);
    await openssl(['req', '-new', '-key', key, '-subj', `/O=outrigger-bench/CN=${name}`, '-out', csr]);
    await openssl(['x509', '-req', '-in', csr, '-CA', root.cert, '-CAkey', root.key, '-CAcreateserial', '-sha256', '-days', '2',
      '-extfile', ext, '-out', cert]);
    // HAProxy's `crt` wants certificate and key in one PEM file.
    const combined = path.join(ld, 'haproxy.pem');
    writeFileSync(combined, readFileSync(cert, 'utf8') + readFileSync(key, 'utf8'), { mode: 0o600 });
    leaves[name] = { cert, key, combined, uri: IDENTITIES[name], dns: DNS_NAMES[name] };
  }
  return { dir: d, rootCert: root.cert, ...leaves };
}

/** A minimal openssl config whose v3_ca section is read from extFile (req -x509 needs a config section). */
function opensslConf(dir, extFile) {
  const conf = path.join(dir, 'openssl.cnf');
  writeFileSync(conf, `[req]\ndistinguished_name=dn\n[dn]\n[v3_ca]\n${readFileSync(extFile, 'utf8')}`);
  return conf;
}
