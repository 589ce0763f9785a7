// Envoy's protos, loaded in place once: lookups, lazily loaded extension packages, type URLs.
import t from 'tap';
import {
  CLUSTER_LOAD_ASSIGNMENT_TYPE_URL,
  CLUSTER_TYPE_URL,
  LISTENER_TYPE_URL,
  ROUTE_CONFIGURATION_TYPE_URL,
  SECRET_TYPE_URL,
  getRoot,
  lookupType,
  typeForUrl,
  typeUrlOf,
} from '../../src/xds/protos.js';

t.test('one Root, loaded once', (t) => {
  t.equal(getRoot(), getRoot());
  t.equal(lookupType('envoy.config.listener.v3.Listener'), lookupType('.envoy.config.listener.v3.Listener'));
  t.end();
});

t.test('the resource type URLs name real message types, and back', (t) => {
  for (const url of [LISTENER_TYPE_URL, ROUTE_CONFIGURATION_TYPE_URL, CLUSTER_TYPE_URL, CLUSTER_LOAD_ASSIGNMENT_TYPE_URL, SECRET_TYPE_URL]) {
    const type = typeForUrl(url);
    t.ok(type, url);
    t.equal(type && typeUrlOf(type), url);
  }
  t.end();
});

t.test('field names are the .proto names, for the bundled well-known types too', (t) => {
  t.ok(lookupType('envoy.config.cluster.v3.Cluster')!.fields.connect_timeout);
  t.strictSame(Object.keys(lookupType('google.protobuf.Value')!.fields), ['null_value', 'number_value', 'string_value', 'bool_value', 'struct_value', 'list_value']);
  t.strictSame(lookupType('google.protobuf.Value')!.oneofs.kind!.oneof, ['null_value', 'number_value', 'string_value', 'bool_value', 'struct_value', 'list_value']);
  t.end();
});

t.test('a type outside the preloaded files is found by loading its package directory', (t) => {
  const fault = lookupType('envoy.extensions.filters.http.fault.v3.HTTPFault');
  t.equal(fault?.fullName, '.envoy.extensions.filters.http.fault.v3.HTTPFault');
  t.ok(lookupType('envoy.extensions.filters.http.fault.v3.HTTPFault'), 'and again, from the already-loaded package');
  t.end();
});

t.test('unknown names are undefined, and never read outside the include directories', (t) => {
  t.equal(lookupType('envoy.config.listener.v3.NoSuchThing'), undefined);
  t.equal(lookupType('acme.v1.Filter'), undefined);
  t.equal(lookupType('../../etc/passwd.Foo'), undefined);
  t.equal(lookupType('Foo'), undefined);
  t.equal(lookupType('envoy.config.listener.v3'), undefined, 'a package is not a message');
  t.equal(typeForUrl('envoy.config.listener.v3.Listener'), undefined, 'a type URL needs a "/"');
  t.equal(typeForUrl('example.com/envoy.config.listener.v3.Listener')?.name, 'Listener', 'any host part is accepted');
  t.end();
});
