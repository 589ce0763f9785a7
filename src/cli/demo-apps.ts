// The demo's workloads (also used by tests and the benchmark): a gRPC echo service from proto/outrigger/demo/v1.
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

// src/cli and dist/cli are both two levels below the package root.
const PROTO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../proto');

interface EchoRequest {
  message: string;
  fail_with_code: number;
  pad_bytes: number;
}

export function loadEchoService(): grpc.ServiceClientConstructor {
  const def = protoLoader.loadSync('outrigger/demo/v1/echo.proto', { includeDirs: [PROTO_DIR], keepCase: true, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { outrigger: { demo: { v1: { Echo: grpc.ServiceClientConstructor } } } };
  return pkg.outrigger.demo.v1.Echo;
}

/** The URI= element of the innermost XFCC entry: who called us, as our sidecar verified it. */
export function peerFromXfcc(xfcc: string | undefined): string {
  if (!xfcc) return '';
  const last = xfcc.split(',').pop() ?? '';
  for (const kv of last.split(';')) if (kv.startsWith('URI=')) return kv.slice(4);
  return '';
}

export interface GrpcEcho {
  port: number;
  close(): Promise<void>;
}

export async function startEchoGrpc(name: string, host = '127.0.0.1', port = 0): Promise<GrpcEcho> {
  const Echo = loadEchoService();
  const server = new grpc.Server();
  const reply = (req: EchoRequest, md: grpc.Metadata) => ({
    message: req.message,
    peer: peerFromXfcc(md.get('x-forwarded-client-cert')[0] as string | undefined),
    served_by: name,
    pad: Buffer.alloc(Math.max(0, Math.min(req.pad_bytes, 4 << 20))),
  });
  const failure = (req: EchoRequest): grpc.ServiceError | null =>
    req.fail_with_code ? Object.assign(new Error(`asked to fail: ${req.message}`), { code: req.fail_with_code, details: `asked to fail: ${req.message}`, metadata: new grpc.Metadata() }) : null;
  server.addService(Echo.service, {
    Unary: (call: grpc.ServerUnaryCall<EchoRequest, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      const f = failure(call.request);
      if (f) return cb(f);
      cb(null, reply(call.request, call.metadata));
    },
    ServerStream: (call: grpc.ServerWritableStream<EchoRequest, unknown>) => {
      const n = Math.max(1, Number(call.request.message.split(':')[1] ?? 3));
      for (let i = 0; i < n; i++) call.write({ ...reply(call.request, call.metadata), message: `${call.request.message}#${i}` });
      const f = failure(call.request);
      if (f) call.emit('error', f);
      else call.end();
    },
    ClientStream: (call: grpc.ServerReadableStream<EchoRequest, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      const parts: string[] = [];
      call.on('data', (r: EchoRequest) => parts.push(r.message));
      call.on('end', () => cb(null, { ...reply({ message: parts.join(','), fail_with_code: 0, pad_bytes: 0 }, call.metadata) }));
    },
    BidiStream: (call: grpc.ServerDuplexStream<EchoRequest, unknown>) => {
      call.on('data', (r: EchoRequest) => call.write(reply(r, call.metadata)));
      call.on('end', () => call.end());
    },
  });
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  return {
    port: bound,
    close: () => new Promise<void>((r) => server.tryShutdown(() => r())),
  };
}
