// /config_dump rendering: Envoy's ConfigDump shape, versions and client status, and inline secrets redacted.
import t from 'tap';
import { configDump, type DumpSources } from '../../src/admin/config-dump.js';

const tlsCluster = {
  name: 'c',
  tls: {
    common: {
      certificates: [{ certificateChain: { kind: 'file', path: '/etc/certs/cert-chain.pem' }, privateKey: { kind: 'inline', value: '-----BEGIN PRIVATE KEY-----\nsecret' } }],
    },
  },
};

const base = (over: Partial<DumpSources> = {}): DumpSources =>
  ({
    bootstrap: { node: { id: 'n', cluster: 'c', metadata: {} }, listeners: [], clusters: [tlsCluster] },
    clusters: { static: [tlsCluster], active: [], warming: [], assignments: [] },
    listeners: { static: [{ listener: { name: 'inbound' }, address: { host: '127.0.0.1', port: 15006 } }], dynamic: [] },
    routes: [],
    ...over,
  }) as unknown as DumpSources;

type Dump = { configs: Record<string, any>[] };
const section = (d: unknown, type: string) => (d as Dump).configs.find((c) => String(c['@type']).endsWith(type))!;

t.test('config_dump names files but never shows inline keys', (t) => {
  const out = JSON.stringify(configDump(base()));
  t.notMatch(out, /secret|BEGIN PRIVATE KEY/);
  t.match(out, /\/etc\/certs\/cert-chain\.pem/);
  t.match(out, /\[redacted\]/);
  t.match(out, /"port":15006/);
  t.notMatch(out, /AdsClientStatus/, 'no ADS section without an ADS client');
  t.end();
});

t.test('dynamic resources: Envoy sections with version_info, last_updated, client_status and error_state', (t) => {
  const at = Date.UTC(2026, 0, 2, 3, 4, 5);
  const rejected = { version: 'v3', details: 'backend: connect_timeout: must not be negative', at };
  const d = configDump(
    base({
      clusters: {
        static: [],
        active: [{ cluster: { ...tlsCluster, name: 'backend' }, version: 'v2', lastUpdated: at }],
        warming: [{ cluster: { name: 'new' }, version: 'v2', lastUpdated: at }],
        assignments: [{ name: 'backend', assignment: { clusterName: 'backend', localities: [], overprovisioningFactor: 140 }, version: 'e1', lastUpdated: at }],
      } as unknown as DumpSources['clusters'],
      listeners: {
        static: [],
        dynamic: [
          { name: 'l1', active: { listener: { name: 'l1' }, version: 'l1v', lastUpdated: at, address: { host: '127.0.0.1', port: 1 } }, draining: [{ listener: { name: 'l1' }, version: 'l0', lastUpdated: at }] },
          { name: 'l2', warming: { listener: { name: 'l2' }, version: 'l1v', lastUpdated: at }, draining: [], error: { listener: { name: 'l2' }, version: 'l1v', lastUpdated: at, details: 'cannot bind' } },
          { name: 'l3', draining: [] },
        ],
      } as unknown as DumpSources['listeners'],
      routes: [{ name: 'r', table: undefined, config: { name: 'r', virtualHosts: [] }, version: 'r1', lastUpdated: at }],
      ads: {
        target: '127.0.0.1:15010',
        connected: true,
        types: [
          { typeUrl: 'x', type: 'cds', version: 'v2', lastUpdated: at, subscribed: '*', rejected, resources: [{ name: 'backend', status: 'nacked', version: 'v2', lastUpdated: at, error: rejected }, { name: 'new', status: 'acked', version: 'v2' }] },
          { typeUrl: 'x', type: 'eds', version: 'e1', subscribed: ['backend'], resources: [{ name: 'backend', status: 'acked', version: 'e1' }] },
          { typeUrl: 'x', type: 'lds', version: 'l1v', subscribed: '*', resources: [{ name: 'l3', status: 'nacked', error: rejected }] },
          { typeUrl: 'x', type: 'rds', version: '', resources: [{ name: 'r', status: 'does-not-exist' }] },
        ],
      } as unknown as DumpSources['ads'],
    }),
  );
  const cds = section(d, 'ClustersConfigDump');
  t.equal(cds.version_info, 'v2');
  t.strictSame(cds.error_state, { version_info: 'v3', details: rejected.details, last_update_attempt: '2026-01-02T03:04:05.000Z' });
  t.match(cds.dynamic_active_clusters[0], { version_info: 'v2', last_updated: '2026-01-02T03:04:05.000Z', cluster: { name: 'backend' }, client_status: 'NACKED', error_state: { version_info: 'v3' } });
  t.notMatch(JSON.stringify(cds), /secret/);
  t.match(cds.dynamic_warming_clusters[0], { cluster: { name: 'new' }, client_status: 'ACKED' });
  t.match(section(d, 'EndpointsConfigDump').dynamic_endpoint_configs[0], { version_info: 'e1', endpoint_config: { clusterName: 'backend' }, client_status: 'ACKED' });
  const lds = section(d, 'ListenersConfigDump').dynamic_listeners;
  t.match(lds[0], { name: 'l1', active_state: { version_info: 'l1v', address: { port: 1 } }, draining_state: [{ version_info: 'l0' }] });
  t.match(lds[1], { name: 'l2', warming_state: { version_info: 'l1v' }, error_state: { details: 'cannot bind', failed_configuration: { name: 'l2' } } });
  t.match(lds[2], { name: 'l3', client_status: 'NACKED', error_state: { version_info: 'v3' } });
  t.match(section(d, 'RoutesConfigDump').dynamic_route_configs[0], { version_info: 'r1', route_config: { name: 'r' }, client_status: 'DOES_NOT_EXIST' });
  const ads = section(d, 'AdsClientStatus');
  t.match(ads, { target: '127.0.0.1:15010', connected: true });
  t.strictSame(ads.types[3], { type: 'rds', version_info: '', subscribed: null, resources: [{ name: 'r', client_status: 'DOES_NOT_EXIST' }] });
  t.end();
});
