import t from 'tap';
import { redactedDump } from '../../src/admin/config-dump.js';

t.test('config_dump names files but never shows inline keys', (t) => {
  const b = {
    node: { id: 'n', cluster: 'c', metadata: {} },
    listeners: [],
    clusters: [
      {
        tls: {
          common: {
            certificates: [{ certificateChain: { kind: 'file', path: '/etc/certs/cert-chain.pem' }, privateKey: { kind: 'inline', value: '-----BEGIN PRIVATE KEY-----\nsecret' } }],
          },
        },
      },
    ],
  };
  const out = JSON.stringify(redactedDump(b as never, [{ name: 'inbound', address: { host: '127.0.0.1', port: 15006 } }]));
  t.notMatch(out, /secret|BEGIN PRIVATE KEY/);
  t.match(out, /\/etc\/certs\/cert-chain\.pem/);
  t.match(out, /\[redacted\]/);
  t.match(out, /"port":15006/);
  t.end();
});
