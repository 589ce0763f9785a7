// gRPC backend for the benchmark: grpc-js serving outrigger.demo.v1.Echo/Unary on 127.0.0.1:PORT (h2c).
// Usage: node bench/grpc/echo-server.mjs PORT
import * as grpc from '@grpc/grpc-js';
import { loadEcho } from './proto.mjs';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: echo-server.mjs PORT');
  process.exit(2);
}
const Echo = loadEcho();
const server = new grpc.Server();
const notImplemented = (call, cb) => cb({ code: grpc.status.UNIMPLEMENTED, message: 'bench server: unary only' });
server.addService(Echo.service, {
  Unary(call, cb) {
    const { message, fail_with_code: code, pad_bytes: pad } = call.request;
    if (code) return cb({ code, message: `failing as asked (${code})` });
    cb(null, { message, peer: '', served_by: 'bench-echo', pad: pad > 0 ? Buffer.alloc(Math.min(pad, 1 << 20)) : Buffer.alloc(0) });
  },
  ServerStream: (call) => call.destroy(new Error('unary only')),
  ClientStream: notImplemented,
  BidiStream: (call) => call.destroy(new Error('unary only')),
});
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) {
    console.error(`echo-server: bind failed: ${err.message}`);
    process.exit(1);
  }
  console.log(`echo-server: listening on 127.0.0.1:${port}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.tryShutdown(() => process.exit(0)));
