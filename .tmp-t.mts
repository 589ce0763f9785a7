import protobuf from 'protobufjs';
import { getRoot, lookupType } from './src/xds/protos.js';
lookupType('envoy.config.bootstrap.v3.Bootstrap');
const out: string[] = [];
function walk(ns: any) {
  for (const n of ns.nestedArray ?? []) {
    if (n instanceof protobuf.Type) for (const f of n.fieldsArray) if (f instanceof protobuf.MapField && f.keyType !== 'string') out.push(n.fullName + '.' + f.name + ' ' + f.keyType);
    walk(n);
  }
}
walk(getRoot());
console.log(out);
