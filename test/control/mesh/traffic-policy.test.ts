// DestinationRule trafficPolicy: every Istio field Outrigger accepts, into the model; Istio's rules on them.
import t from 'tap';
import { check, doc, valid, withBase } from './helpers.js';

const rule = (body: string) => withBase(doc('DestinationRule', 'ratings', `  host: ratings\n${body}`));

t.test('every accepted field lands in the model, durations in ms', async (t) => {
  const c = valid(
    rule(`  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie: {name: user, path: /, ttl: 0s}
        maglev: {tableSize: 65537}
      localityLbSetting:
        enabled: true
        failover: [{from: aws-us-east-1, to: gcp-us-east4}]
        failoverPriority: [topology.istio.io/network, "version=v1"]
    connectionPool:
      tcp:
        maxConnections: 100
        connectTimeout: 30ms
        tcpKeepalive: {probes: 3, time: 7200s, interval: 75s}
        maxConnectionDuration: 1h
        idleTimeout: 0s
      http:
        http1MaxPendingRequests: 10
        http2MaxRequests: 1000
        maxRequestsPerConnection: 1
        maxRetries: 3
        idleTimeout: 1m
        h2UpgradePolicy: DO_NOT_UPGRADE
        useClientProtocol: true
        maxConcurrentStreams: 100
    outlierDetection:
      consecutiveGatewayErrors: 2
      consecutive5xxErrors: 0
      splitExternalLocalOriginErrors: true
      consecutiveLocalOriginFailures: 4
      interval: 5m
      baseEjectionTime: 15m
      maxEjectionPercent: 100
      minHealthPercent: 0
    tls: {}
    portLevelSettings:
    - port: {number: 9080}
      loadBalancer:
        simple: PEAK_EWMA
        localityLbSetting:
          distribute:
          - from: aws-us-east-1/*
            to: {"aws-us-east-1/*": 80, "gcp-us-east4/*": 20}
          - from: gcp-us-east4
            to: {"*": 100}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer:
        consistentHash: {httpHeaderName: x-user, minimumRingSize: 1024}
      tls: {mode: ISTIO_MUTUAL}
  - name: v2
    trafficPolicy:
      loadBalancer:
        consistentHash: {useSourceIp: true, ringHash: {minimumRingSize: 2048}}
  - name: v3
    trafficPolicy:
      loadBalancer:
        consistentHash: {httpQueryParameterName: u, ringHash: {}}
`),
  );
  const dr = c.destinationRules.find((d) => d.meta.name === 'ratings')!;
  t.strictSame(dr.trafficPolicy, {
    loadBalancer: {
      consistentHash: { httpCookie: { name: 'user', path: '/', ttlMs: 0 }, maglev: { tableSize: 65537 } },
      localityLbSetting: { enabled: true, distribute: [], failover: [{ from: 'aws-us-east-1', to: 'gcp-us-east4' }], failoverPriority: ['topology.istio.io/network', 'version=v1'] },
    },
    connectionPool: {
      tcp: { maxConnections: 100, connectTimeoutMs: 30, tcpKeepalive: { probes: 3, timeMs: 7_200_000, intervalMs: 75_000 }, maxConnectionDurationMs: 3_600_000, idleTimeoutMs: 0 },
      http: {
        http1MaxPendingRequests: 10,
        http2MaxRequests: 1000,
        maxRequestsPerConnection: 1,
        maxRetries: 3,
        idleTimeoutMs: 60_000,
        h2UpgradePolicy: 'DO_NOT_UPGRADE',
        useClientProtocol: true,
        maxConcurrentStreams: 100,
      },
    },
    outlierDetection: {
      consecutiveGatewayErrors: 2,
      consecutive5xxErrors: 0,
      consecutiveLocalOriginFailures: 4,
      splitExternalLocalOriginErrors: true,
      intervalMs: 300_000,
      baseEjectionTimeMs: 900_000,
      maxEjectionPercent: 100,
      minHealthPercent: 0,
    },
    // ClientTLSSettings.mode unset is the proto3 default, DISABLE.
    tls: { mode: 'DISABLE' },
    portLevelSettings: [
      {
        port: 9080,
        loadBalancer: {
          simple: 'PEAK_EWMA',
          localityLbSetting: {
            distribute: [
              { from: 'aws-us-east-1/*', to: { 'aws-us-east-1/*': 80, 'gcp-us-east4/*': 20 } },
              { from: 'gcp-us-east4', to: { '*': 100 } },
            ],
            failover: [],
            failoverPriority: [],
          },
        },
      },
    ],
  });
  t.strictSame(
    dr.subsets.map((s) => [s.name, s.labels, s.trafficPolicy?.loadBalancer?.consistentHash, s.trafficPolicy?.tls]),
    [
      ['v1', { version: 'v1' }, { httpHeaderName: 'x-user', ringHash: { minimumRingSize: 1024 } }, { mode: 'ISTIO_MUTUAL' }],
      ['v2', {}, { useSourceIp: true, ringHash: { minimumRingSize: 2048 } }, undefined],
      ['v3', {}, { httpQueryParameterName: 'u', ringHash: {} }, undefined],
    ],
  );
});

t.test('load balancer rules: one policy, one hash key, one algorithm, Maglev primes', async (t) => {
  const got = check(
    rule(`  subsets:
  - name: a
    trafficPolicy:
      loadBalancer:
        simple: ROUND_ROBIN
        consistentHash: {httpHeaderName: x}
  - name: b
    trafficPolicy:
      loadBalancer: {consistentHash: {}}
  - name: c
    trafficPolicy:
      loadBalancer: {consistentHash: {httpHeaderName: x, useSourceIp: true, ringHash: {}, maglev: {tableSize: 7}}}
  - name: d
    trafficPolicy:
      loadBalancer: {consistentHash: {httpCookie: {path: /}, maglev: {}}}
  - name: e
    trafficPolicy:
      loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 65536}}, simple: MAGLEV, warmup: {duration: 1s}}
  - name: f
    trafficPolicy:
      loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 5000011}}}
`),
  );
  t.strictSame(got, [
    'mesh/x.yaml:12 DestinationRule ratings: spec.subsets[0].trafficPolicy.loadBalancer.consistentHash: only one of simple, consistentHash may be set',
    'mesh/x.yaml:15 DestinationRule ratings: spec.subsets[1].trafficPolicy.loadBalancer.consistentHash: one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName is required',
    'mesh/x.yaml:18 DestinationRule ratings: spec.subsets[2].trafficPolicy.loadBalancer.consistentHash.useSourceIp: only one of httpHeaderName, useSourceIp may be set',
    'mesh/x.yaml:18 DestinationRule ratings: spec.subsets[2].trafficPolicy.loadBalancer.consistentHash.maglev: only one of ringHash, maglev may be set',
    'mesh/x.yaml:21 DestinationRule ratings: spec.subsets[3].trafficPolicy.loadBalancer.consistentHash.httpCookie.name: is required',
    'mesh/x.yaml:21 DestinationRule ratings: spec.subsets[3].trafficPolicy.loadBalancer.consistentHash.maglev.tableSize: is required',
    'mesh/x.yaml:24 DestinationRule ratings: spec.subsets[4].trafficPolicy.loadBalancer.warmup: not supported yet',
    'mesh/x.yaml:24 DestinationRule ratings: spec.subsets[4].trafficPolicy.loadBalancer.consistentHash: only one of simple, consistentHash may be set',
    'mesh/x.yaml:24 DestinationRule ratings: spec.subsets[4].trafficPolicy.loadBalancer.simple: "MAGLEV" is not one of UNSPECIFIED, LEAST_REQUEST, RANDOM, ROUND_ROBIN, LEAST_CONN, PEAK_EWMA, PASSTHROUGH',
    'mesh/x.yaml:24 DestinationRule ratings: spec.subsets[4].trafficPolicy.loadBalancer.consistentHash.maglev.tableSize: 65536 is not a prime number (Maglev needs one)',
    'mesh/x.yaml:27 DestinationRule ratings: spec.subsets[5].trafficPolicy.loadBalancer.consistentHash.maglev.tableSize: must be 1..5000010',
  ]);
  t.strictSame(check(rule('  trafficPolicy:\n    loadBalancer:\n      consistentHash: {useSourceIp: true, minimumRingSize: 8, ringHash: {minimumRingSize: 8}}\n')), [
    'mesh/x.yaml:9 DestinationRule ratings: spec.trafficPolicy.loadBalancer.consistentHash.minimumRingSize: only one of ringHash, minimumRingSize may be set',
  ]);
  // Envoy's and gRPC's bound on ring sizes; PASSTHROUGH and slow start are refused, never silently ignored.
  t.strictSame(check(rule('  trafficPolicy:\n    loadBalancer: {consistentHash: {useSourceIp: true, ringHash: {minimumRingSize: 8388609}}}\n')), [
    'mesh/x.yaml:8 DestinationRule ratings: spec.trafficPolicy.loadBalancer.consistentHash.ringHash.minimumRingSize: must be 0..8388608',
  ]);
  t.strictSame(check(rule('  trafficPolicy:\n    loadBalancer: {simple: PASSTHROUGH, warmupDurationSecs: 10s}\n')), [
    'mesh/x.yaml:8 DestinationRule ratings: spec.trafficPolicy.loadBalancer.warmupDurationSecs: not supported yet',
    'mesh/x.yaml:8 DestinationRule ratings: spec.trafficPolicy.loadBalancer.simple: PASSTHROUGH: not supported (an ORIGINAL_DST cluster needs a redirected connection; apps address the sidecar on 15001 directly)',
  ]);
});

t.test('locality load balancing: weights, patterns, overlaps, failover regions (Istio ValidateLocalityLbSetting)', async (t) => {
  const got = check(
    rule(`  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 3}
    loadBalancer:
      localityLbSetting:
        distribute:
        - from: "us-west/*/z"
          to: {"us-west/z1": 0, "us-east": 70}
        - from: us-west
          to: {"us-west/*": 50, "us-west/z1": 50}
        - from: us-west/z2
          to: {"*": 100}
        failover:
        - {from: us-west, to: us-west}
        - {from: us-west/z1, to: "*"}
        failoverPriority: [topology.kubernetes.io/region]
`),
  );
  t.strictSame(got, [
    'mesh/x.yaml:12 DestinationRule ratings: spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].from: "us-west/*/z" is not a locality (region/zone/subzone, each optional after the region; "*" only as the last part)',
    'mesh/x.yaml:13 DestinationRule ratings: spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to["us-west/z1"]: must be 1..100',
    'mesh/x.yaml:13 DestinationRule ratings: spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to: weights add up to 70, not 100',
    'mesh/x.yaml:15 DestinationRule ratings: spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[1].to["us-west/z1"]: locality us-west/z1 overlaps us-west/*',
    'mesh/x.yaml:16 DestinationRule ratings: spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[2].from: locality us-west/z2 overlaps us-west',
    'mesh/x.yaml:18 DestinationRule ratings: spec.trafficPolicy.loadBalancer.localityLbSetting.failover: only one of distribute and failover may be set',
    'mesh/x.yaml:19 DestinationRule ratings: spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0].to: must differ from "from"',
    'mesh/x.yaml:20 DestinationRule ratings: spec.trafficPolicy.loadBalancer.localityLbSetting.failover[1].from: must be a region (no "/" or "*")',
    'mesh/x.yaml:20 DestinationRule ratings: spec.trafficPolicy.loadBalancer.localityLbSetting.failover[1].to: must be a region (no "/" or "*")',
    'mesh/x.yaml:21 DestinationRule ratings: spec.trafficPolicy.loadBalancer.localityLbSetting.failoverPriority[0]: topology.kubernetes.io/region cannot be used together with failover',
  ]);
  t.strictSame(check(rule('  trafficPolicy:\n    loadBalancer:\n      localityLbSetting: {failoverPriority: [version]}\n')), [
    'mesh/x.yaml:9 DestinationRule ratings: spec.trafficPolicy.loadBalancer.localityLbSetting: failover and failoverPriority need outlierDetection in the same traffic policy',
  ]);
});

t.test('connection pool, outlier detection, TLS and port-level rules', async (t) => {
  const got = check(
    rule(`  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: -1, connectTimeout: 0s, idleTimeout: 0.5ms, tcpKeepalive: {probes: 1.5}}
      http: {h2UpgradePolicy: UPGRADE, useClientProtocol: true, maxRetries: 2147483648}
    outlierDetection:
      consecutiveErrors: 5
      consecutiveLocalOriginFailures: 2
      maxEjectionPercent: 101
      minHealthPercent: -1
      baseEjectionTime: 30
    tls: {mode: SIMPLE, sni: x.example}
    tunnel: {targetHost: x, targetPort: 1}
    portLevelSettings:
    - tls: {mode: DISABLE}
    - port: {number: 9080}
    - port: {number: 9080}
      connectionPool: {}
  subsets:
  - name: v1
    trafficPolicy: {}
`),
  );
  t.strictSame(got, [
    'mesh/x.yaml:9 DestinationRule ratings: spec.trafficPolicy.connectionPool.tcp.maxConnections: must be 0..2147483647',
    'mesh/x.yaml:9 DestinationRule ratings: spec.trafficPolicy.connectionPool.tcp.connectTimeout: must be at least 1ms',
    'mesh/x.yaml:9 DestinationRule ratings: spec.trafficPolicy.connectionPool.tcp.tcpKeepalive.probes: expected an integer, got 1.5',
    'mesh/x.yaml:9 DestinationRule ratings: spec.trafficPolicy.connectionPool.tcp.idleTimeout: must be at least 1ms',
    'mesh/x.yaml:10 DestinationRule ratings: spec.trafficPolicy.connectionPool.http.useClientProtocol: must not be true when h2UpgradePolicy is UPGRADE',
    'mesh/x.yaml:10 DestinationRule ratings: spec.trafficPolicy.connectionPool.http.maxRetries: must be 0..2147483647',
    'mesh/x.yaml:12 DestinationRule ratings: spec.trafficPolicy.outlierDetection.consecutiveErrors: deprecated in Istio and not supported; use consecutive5xxErrors or consecutiveGatewayErrors',
    'mesh/x.yaml:13 DestinationRule ratings: spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures: needs splitExternalLocalOriginErrors: true',
    'mesh/x.yaml:14 DestinationRule ratings: spec.trafficPolicy.outlierDetection.maxEjectionPercent: must be 0..100',
    'mesh/x.yaml:15 DestinationRule ratings: spec.trafficPolicy.outlierDetection.minHealthPercent: must be 0..100',
    'mesh/x.yaml:16 DestinationRule ratings: spec.trafficPolicy.outlierDetection.baseEjectionTime: expected a string, got 30',
    'mesh/x.yaml:17 DestinationRule ratings: spec.trafficPolicy.tls.sni: not supported yet',
    'mesh/x.yaml:17 DestinationRule ratings: spec.trafficPolicy.tls.mode: SIMPLE: not supported (Outrigger originates Istio mutual TLS (ISTIO_MUTUAL) or plaintext (DISABLE))',
    'mesh/x.yaml:18 DestinationRule ratings: spec.trafficPolicy.tunnel: not supported yet',
    'mesh/x.yaml:20 DestinationRule ratings: spec.trafficPolicy.portLevelSettings[0].port: is required',
    'mesh/x.yaml:21 DestinationRule ratings: spec.trafficPolicy.portLevelSettings[1]: a port traffic policy must set at least one of loadBalancer, connectionPool, outlierDetection, tls',
    'mesh/x.yaml:22 DestinationRule ratings: spec.trafficPolicy.portLevelSettings[2].port.number: port 9080 has two portLevelSettings',
    'mesh/x.yaml:23 DestinationRule ratings: spec.trafficPolicy.portLevelSettings[2].connectionPool: a connection pool must set at least one of tcp, http',
    'mesh/x.yaml:26 DestinationRule ratings: spec.subsets[0].trafficPolicy: a traffic policy must set at least one of loadBalancer, connectionPool, outlierDetection, tls, portLevelSettings',
  ]);
  t.strictSame(check(rule('  trafficPolicy:\n    connectionPool: {http: {h2UpgradePolicy: SOMETIMES}}\n')), [
    'mesh/x.yaml:8 DestinationRule ratings: spec.trafficPolicy.connectionPool.http.h2UpgradePolicy: "SOMETIMES" is not one of DEFAULT, DO_NOT_UPGRADE, UPGRADE',
  ]);
});

t.test('connectionPool limits: negative counts and non-positive durations refused where Istio refuses them', async (t) => {
  t.strictSame(
    check(
      rule(`  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 0, connectTimeout: -1s}
      http: {http1MaxPendingRequests: -1, http2MaxRequests: -2, maxRequestsPerConnection: -3, maxRetries: -4, idleTimeout: 0s}
`),
    ),
    [
      'mesh/x.yaml:9 DestinationRule ratings: spec.trafficPolicy.connectionPool.tcp.connectTimeout: invalid duration "-1s" (write it as Istio does: 5s, 250ms, 1m30s, 1h)',
      'mesh/x.yaml:10 DestinationRule ratings: spec.trafficPolicy.connectionPool.http.http1MaxPendingRequests: must be 0..2147483647',
      'mesh/x.yaml:10 DestinationRule ratings: spec.trafficPolicy.connectionPool.http.http2MaxRequests: must be 0..2147483647',
      'mesh/x.yaml:10 DestinationRule ratings: spec.trafficPolicy.connectionPool.http.maxRequestsPerConnection: must be 0..2147483647',
      'mesh/x.yaml:10 DestinationRule ratings: spec.trafficPolicy.connectionPool.http.maxRetries: must be 0..2147483647',
      'mesh/x.yaml:10 DestinationRule ratings: spec.trafficPolicy.connectionPool.http.idleTimeout: must be at least 1ms',
    ],
  );
  t.strictSame(check(rule('  trafficPolicy:\n    connectionPool: {tcp: {maxConnections: 0}, http: {maxRetries: 0}}\n')), [], '0 is allowed (istiod reads it as unset)');
});
