// proto3 JSON -> message: names, well-known types, scalars, oneofs, and every error at the path the user wrote.
import t from 'tap';
import protobuf from 'protobufjs';
import { decodeCanonical, unpackAny } from '../../src/xds/canonical.js';
import { jsonToMessage, type PlainMessage } from '../../src/xds/json.js';
import { lookupType } from '../../src/xds/protos.js';
import { fmt, problems } from './helpers.js';

const type = (name: string) => lookupType(name)!;

/** JSON -> message -> bytes -> canonical object: what a decoder would see. */
function canonical(name: string, json: unknown) {
  const T = type(name);
  const r = jsonToMessage(T, json, '');
  if (!r.ok) throw new Error(r.errors.map(fmt).join('\n'));
  return decodeCanonical(T, T.encode(r.value).finish());
}
const errors = (name: string, json: unknown, path = '') => problems(jsonToMessage(type(name), json, path));

t.test('field names: snake_case and lowerCamelCase both work; one field written twice is an error', (t) => {
  const a = canonical('envoy.config.cluster.v3.Cluster', { name: 'c', connect_timeout: '1s', lb_policy: 'RANDOM' });
  const b = canonical('envoy.config.cluster.v3.Cluster', { name: 'c', connectTimeout: '1s', lbPolicy: 'RANDOM' });
  t.strictSame(a, b);
  t.strictSame(a, { name: 'c', connect_timeout: { seconds: '1' }, lb_policy: 'RANDOM' });
  t.strictSame(errors('envoy.config.cluster.v3.Cluster', { lb_policy: 'RANDOM', lbPolicy: 'RANDOM' }, 'c'), ["c.lbPolicy: field is set twice (also as 'lb_policy')"]);
  t.end();
});

t.test('proto3 defaults are not serialized, so a file and a control plane produce the same object', (t) => {
  const o = canonical('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager', {
    codec_type: 'AUTO',
    stat_prefix: '',
    generate_request_id: false,
    set_current_client_cert_details: { uri: false },
  });
  // codec_type AUTO (0) and stat_prefix "" vanish; a BoolValue false is an empty wrapper, i.e. "set, to false".
  t.strictSame(o, { generate_request_id: {}, set_current_client_cert_details: {} });
  t.strictSame(canonical('envoy.config.route.v3.RouteMatch', { prefix: '' }), { prefix: '' }, 'a oneof member keeps presence');
  t.end();
});

t.test('null means "not set"', (t) => {
  t.strictSame(canonical('envoy.config.cluster.v3.Cluster', { name: 'c', lb_policy: null, load_assignment: null }), { name: 'c' });
  t.end();
});

t.test('Duration strings', (t) => {
  const d = (timeout: unknown) => canonical('envoy.config.route.v3.RouteAction', { timeout }).timeout;
  t.strictSame(d('1.5s'), { seconds: '1', nanos: 500_000_000 });
  t.strictSame(d('0.000000001s'), { nanos: 1 });
  t.strictSame(d('-2s'), { seconds: '-2' });
  t.strictSame(d('0s'), {});
  for (const bad of ['1m', '1.5', '1.0000000001s', 's', 15, { seconds: 1 }]) {
    t.match(errors('envoy.config.route.v3.RouteAction', { timeout: bad }), [/^timeout: invalid duration .* \(expected e\.g\. "1\.5s"\)$/], String(bad));
  }
  t.end();
});

t.test('wrapper types come from plain scalars', (t) => {
  const o = canonical('envoy.config.core.v3.Http2ProtocolOptions', { max_concurrent_streams: 10, allow_connect: true, override_stream_error_on_invalid_http_message: true });
  t.strictSame(o, { max_concurrent_streams: { value: 10 }, allow_connect: true, override_stream_error_on_invalid_http_message: { value: true } });
  t.strictSame(errors('envoy.config.core.v3.Http2ProtocolOptions', { max_concurrent_streams: { value: 10 } }), ['max_concurrent_streams: expected an integer, got an object']);
  t.end();
});

t.test('scalars: strings, bools, 32/64-bit integers (numbers or strings), floats, bytes', (t) => {
  const B = 'envoy.config.bootstrap.v3.Bootstrap';
  t.strictSame(canonical(B, { stats_server_version_override: '18446744073709551615' }).stats_server_version_override, { value: '18446744073709551615' }, 'uint64 max, no precision lost');
  t.strictSame(canonical(B, { stats_server_version_override: 42 }).stats_server_version_override, { value: '42' });
  t.strictSame(canonical('envoy.config.core.v3.SocketAddress', { port_value: '8080' }), { port_value: 8080 });
  const inline = canonical('envoy.config.core.v3.DataSource', { inline_bytes: 'aGVsbG8=' }).inline_bytes as Buffer;
  t.equal(inline.toString(), 'hello');
  const rd = (default_value: unknown) => canonical('envoy.config.core.v3.RuntimeDouble', { default_value, runtime_key: 'k' }).default_value;
  t.equal(rd(0.25), 0.25);
  t.equal(rd('1e3'), 1000);
  t.equal(rd('-Infinity'), -Infinity);
  t.ok(Number.isNaN(rd('NaN')));
  t.strictSame(errors(B, { stats_server_version_override: '-1' }), ['stats_server_version_override: -1 is out of range for uint64']);
  t.strictSame(errors('envoy.config.core.v3.SocketAddress', { port_value: 1.5, address: 7, ipv4_compat: 'yes' }), [
    'port_value: expected an integer, got 1.5',
    'address: expected a string, got 7',
    'ipv4_compat: expected true or false, got "yes"',
  ]);
  t.strictSame(errors('envoy.config.core.v3.SocketAddress', { port_value: 4294967296 }), ['port_value: 4294967296 is out of range for uint32']);
  t.strictSame(errors('envoy.config.core.v3.RuntimeDouble', { default_value: 'lots' }), ['default_value: expected a number, got "lots"']);
  t.strictSame(errors('envoy.config.core.v3.DataSource', { inline_bytes: '***' }), ['inline_bytes: expected base64 bytes, got "***"']);
  t.end();
});

t.test('enums by name or number; anything else names the valid values', (t) => {
  t.strictSame(canonical('envoy.config.cluster.v3.Cluster', { lb_policy: 5 }), { lb_policy: 'MAGLEV' });
  t.strictSame(errors('envoy.config.cluster.v3.Cluster', { lb_policy: 'maglev' }), [
    'lb_policy: "maglev" is not a valid LbPolicy (one of ROUND_ROBIN, LEAST_REQUEST, RING_HASH, RANDOM, MAGLEV, CLUSTER_PROVIDED, LOAD_BALANCING_POLICY_CONFIG)',
  ]);
  t.match(errors('envoy.config.cluster.v3.Cluster', { lb_policy: 4 }), [/^lb_policy: 4 is not a valid LbPolicy/], '4 is a hole in LbPolicy');
  t.end();
});

t.test('repeated fields and maps, with [index] and ["key"] in paths', (t) => {
  const o = canonical('envoy.config.cluster.v3.Cluster', {
    typed_extension_protocol_options: { 'a.b': { '@type': 'type.googleapis.com/google.protobuf.Duration', value: '2s' } },
    dns_resolvers: [{ socket_address: { address: '1.1.1.1' } }],
  });
  t.strictSame(o.dns_resolvers, [{ socket_address: { address: '1.1.1.1' } }]);
  t.strictSame(errors('envoy.config.cluster.v3.Cluster', { dns_resolvers: {}, typed_extension_protocol_options: [] }), [
    'dns_resolvers: expected a list, got an object',
    'typed_extension_protocol_options: expected an object (map), got a list',
  ]);
  t.strictSame(errors('envoy.config.cluster.v3.Cluster', { dns_resolvers: [{}, { socket_addres: {} }], typed_extension_protocol_options: { 'x.y': { '@type': 'type.googleapis.com/google.protobuf.Duration', value: 'soon' } } }), [
    'dns_resolvers[1].socket_addres: unknown field',
    'typed_extension_protocol_options["x.y"].value: invalid duration "soon" (expected e.g. "1.5s")',
  ]);
  t.end();
});

t.test('map keys of non-string types are checked', (t) => {
  // No Envoy message we load has one, so a small type stands in.
  const T = protobuf.Root.fromJSON({ nested: { M: { fields: { m: { keyType: 'uint32', type: 'string', id: 1 } as protobuf.IMapField } } } }).lookupType('M');
  t.strictSame(problems(jsonToMessage(T, { m: { '1': 'a', x: 'b' } }, '')), ['m["x"]: expected an integer, got "x"']);
  t.end();
});

t.test('oneofs: two members of one oneof are an error at the second', (t) => {
  t.strictSame(errors('envoy.config.route.v3.RouteMatch', { prefix: '/', safeRegex: { regex: '.*' } }, 'm'), ["m.safeRegex: only one of 'prefix' and 'safeRegex' may be set (oneof path_specifier)"]);
  t.end();
});

t.test('google.protobuf.Any: "@type" names the message, its fields sit beside it; nested Any recurse', (t) => {
  const o = canonical('envoy.config.listener.v3.Filter', {
    name: 'hcm',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
      stat_prefix: 'x',
      http_filters: [{ name: 'r', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
    },
  });
  const outer = unpackAny(o.typed_config as PlainMessage, 'typed_config');
  t.ok(outer.ok);
  if (!outer.ok) return t.end();
  t.equal(outer.value.typeUrl, 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager');
  t.equal(outer.value.value.stat_prefix, 'x');
  const inner = unpackAny((outer.value.value.http_filters as PlainMessage[])[0]!.typed_config as PlainMessage, 'x');
  t.match(inner, { ok: true, value: { typeUrl: 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router', value: {} } });

  const F = 'envoy.config.listener.v3.Filter';
  t.strictSame(errors(F, { typed_config: {} }), ['typed_config: "@type" (a type URL) is required']);
  t.strictSame(errors(F, { typed_config: { '@type': 7 } }), ['typed_config.@type: "@type" (a type URL) is required']);
  t.strictSame(errors(F, { typed_config: 'x' }), ['typed_config: expected an object with "@type", got "x"']);
  t.strictSame(errors(F, { typed_config: { '@type': 'envoy.config.listener.v3.Listener' } }), ['typed_config.@type: unknown type "envoy.config.listener.v3.Listener"']);
  t.strictSame(errors(F, { typed_config: { '@type': 'type.googleapis.com/google.protobuf.Duration', value: '1s', extra: 1 } }), ['typed_config.extra: unknown field']);
  t.strictSame(errors(F, { typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router', foo: 1 } }), ['typed_config.foo: unknown field']);
  t.end();
});

t.test('Struct, Value and ListValue', (t) => {
  const o = canonical('envoy.config.core.v3.Node', { metadata: { s: 'x', n: 0, b: false, z: null, l: [1, [2]], o: { k: {} } } });
  t.strictSame(o.metadata, {
    fields: {
      s: { string_value: 'x' },
      n: { number_value: 0 },
      b: { bool_value: false },
      z: { null_value: 'NULL_VALUE' },
      l: { list_value: { values: [{ number_value: 1 }, { list_value: { values: [{ number_value: 2 }] } }] } },
      o: { struct_value: { fields: { k: { struct_value: {} } } } },
    },
  });
  const direct = canonical('envoy.config.core.v3.Metadata', { filter_metadata: { f: { a: 1 } } });
  t.strictSame(direct, { filter_metadata: { f: { fields: { a: { number_value: 1 } } } } });
  t.strictSame(errors('envoy.config.core.v3.Node', { metadata: [1] }), ['metadata: expected an object, got a list']);
  t.strictSame(errors('envoy.config.core.v3.Node', { metadata: { bin: new Uint8Array([1]) } }), ['metadata.bin: an object is not a JSON value']);
  t.end();
});

t.test('Value and ListValue where the proto uses them directly', (t) => {
  const T = 'envoy.config.core.v3.TypedExtensionConfig';
  const o = canonical(T, { name: 'x', typed_config: { '@type': 'type.googleapis.com/google.protobuf.ListValue', value: ['a', null] } });
  const any = unpackAny(o.typed_config as PlainMessage, 'typed_config');
  t.match(any, { ok: true, value: { value: { values: [{ string_value: 'a' }, { null_value: 'NULL_VALUE' }] } } });
  const v = canonical(T, { name: 'x', typed_config: { '@type': 'type.googleapis.com/google.protobuf.Value', value: null } });
  t.match(unpackAny(v.typed_config as PlainMessage, 't'), { ok: true, value: { value: { null_value: 'NULL_VALUE' } } });
  t.strictSame(errors(T, { typed_config: { '@type': 'type.googleapis.com/google.protobuf.ListValue', value: {} } }), ['typed_config.value: expected a list, got an object']);
  t.end();
});

t.test('Timestamp and FieldMask JSON forms are refused by name', (t) => {
  t.strictSame(errors('envoy.config.core.v3.TypedExtensionConfig', { typed_config: { '@type': 'type.googleapis.com/google.protobuf.Timestamp', value: '2024-01-01T00:00:00Z' } }), [
    'typed_config.value: google.protobuf.Timestamp values are not supported',
  ]);
  t.end();
});

t.test('messages must be objects; unknown fields are named where they are', (t) => {
  t.strictSame(errors('envoy.config.bootstrap.v3.Bootstrap', 'x'), [': expected an object (envoy.config.bootstrap.v3.Bootstrap), got "x"']);
  t.strictSame(errors('envoy.config.bootstrap.v3.Bootstrap', { node: [] }), ['node: expected an object (envoy.config.core.v3.Node), got a list']);
  t.strictSame(errors('envoy.config.bootstrap.v3.Bootstrap', { static_resources: { clusters: [{}, { nmae: 'x' }] } }), ['static_resources.clusters[1].nmae: unknown field']);
  t.end();
});

t.test('hooks see each message of their type, with its path, and may rewrite it', (t) => {
  const seen: string[] = [];
  const r = jsonToMessage(
    type('envoy.extensions.transport_sockets.tls.v3.TlsCertificate'),
    { certificate_chain: { filename: 'a' }, private_key: { inline_string: 'k' } },
    'c',
    { hooks: { 'envoy.config.core.v3.DataSource': (m, p) => (seen.push(p), m.filename !== undefined && (m.filename = `/abs/${String(m.filename)}`)) } },
  );
  t.strictSame(seen, ['c.certificate_chain', 'c.private_key']);
  t.match(r, { ok: true, value: { certificate_chain: { filename: '/abs/a' } } });
  t.end();
});
