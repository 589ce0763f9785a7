// Sanity checks run before any load: the path returns the backend's body, and hop B really demands a client
// certificate (a request without one must not succeed; one with the frontend cert must).
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { httpGet } from './procs.mjs';

/** GET / through the entry port; returns a string describing a problem, or null when fine. */
export async function checkEntry(port, { host, bodyBytes }) {
  try {
    const r = await httpGet(port, '/', { headers: host ? { host } : {} });
    if (r.status !== 200) return `GET / via :${port} -> HTTP ${r.status}: ${r.body.toString().slice(0, 200)}`;
    if (r.body.length !== bodyBytes) return `GET / via :${port} -> ${r.body.length} bytes, expected ${bodyBytes}`;
    return null;
  } catch (e) {
    return `GET / via :${port} failed: ${e.message}`;
  }
}

function tlsGet(port, { certs, withCert, host, headers = {} }) {
  return new Promise((resolve) => {
    const opts = {
      host: '127.0.0.1',
      port,
      path: '/',
      method: 'GET',
      agent: false,
      ca: readFileSync(certs.rootCert),
      servername: certs.reviews.dns,
      ALPNProtocols: ['http/1.1'],
      headers: { ...(host && { host }), ...headers },
      timeout: 3000,
      // URI-SAN-only identities are checked by the proxies under test; here we only need the chain.
      checkServerIdentity: () => undefined,
    };
    if (withCert) {
      opts.cert = readFileSync(certs.frontend.cert);
      opts.key = readFileSync(certs.frontend.key);
    }
    const req = https.request(opts, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ error: e.code ?? e.message }));
    req.end();
  });
}

/** Hop B must answer 200 with the client cert and refuse (handshake alert or non-200) without it. */
export async function checkMtls(port, { certs, host, headers }) {
  const yes = await tlsGet(port, { certs, withCert: true, host, headers });
  const no = await tlsGet(port, { certs, withCert: false, host, headers });
  const desc = (r) => (r.error ? `error ${r.error}` : `HTTP ${r.status}`);
  const ok = yes.status === 200 && no.status !== 200;
  return { ok, detail: `hop B with client cert: ${desc(yes)}; without: ${desc(no)}` };
}
