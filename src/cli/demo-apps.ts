// The demo's workloads (also used by tests and the benchmark): bookinfo's frontend, reviews and ratings as small
// HTTP apps that call each other through their own sidecar, and a gRPC echo service from proto/outrigger/demo/v1.
import http from 'node:http';
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

export interface EchoReply {
  readonly message: string;
  /** The caller's SPIFFE ID as the server's sidecar verified it. */
  readonly peer: string;
  readonly served_by: string;
}

/** One Echo.Unary call to `target` (a sidecar's outbound listener) for the service at `authority` (host:port). */
export function callEcho(target: string, authority: string, message: string): Promise<EchoReply> {
  const Echo = loadEchoService();
  const client = new Echo(target, grpc.credentials.createInsecure(), { 'grpc.default_authority': authority });
  return new Promise((resolve, reject) => {
    (client as unknown as { Unary(r: object, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, v: EchoReply) => void): void }).Unary({ message }, { deadline: Date.now() + 10_000 }, (e, v) => {
      client.close();
      if (e) reject(e);
      else resolve(v);
    });
  });
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

/** Who an app is: its pod, and the labels and locality the demo gives it (as a Downward API env would). */
export interface AppIdentity {
  readonly pod: string;
  readonly app: string;
  readonly version: string;
  readonly region: string;
  readonly zone: string;
}

/**
 * A bookinfo app's answer: who served, who called it (the SPIFFE ID its sidecar verified, from
 * x-forwarded-client-cert; empty when not called through the mesh) and the answers of what it called.
 */
export interface AppAnswer extends AppIdentity {
  readonly caller: string;
  readonly calls: Readonly<Record<string, AppAnswer>>;
}

/** What a bookinfo app calls per request, by service name (port 9080, bookinfo's). */
export function upstreamsOf(app: string, version: string): readonly string[] {
  if (app === 'frontend') return ['reviews', 'ratings'];
  // Bookinfo's reviews v1 shows no stars; v2 and v3 ask ratings.
  if (app === 'reviews' && version !== 'v1') return ['ratings'];
  return [];
}

/** Request headers an app passes on to what it calls: the user (for routing) and tracing, as Istio asks apps to. */
const PROPAGATED = ['end-user', 'x-request-id', 'traceparent', 'tracestate'];

export interface BookinfoAppOptions {
  readonly id: AppIdentity;
  /** Where the app listens: the pod's address and an app port. */
  readonly host: string;
  readonly port: number;
  /** The pod's own sidecar outbound listener (INSTANCE_IPS[0]:15001), through which every call goes. */
  readonly outbound: { readonly host: string; readonly port: number };
  readonly upstreams: readonly string[];
}

export interface RunningApp {
  /** The bound port (the one asked for, or the kernel's pick for 0). */
  readonly port: number;
  close(): Promise<void>;
}

/**
 * One bookinfo app on host:port. Each request calls every upstream in parallel through the pod's sidecar with
 * the service port in the Host header (`reviews:9080`), and answers 200 with an AppAnswer, or 502 with
 * {pod, error} naming the call that failed and what it got.
 */
export function startBookinfoApp(o: BookinfoAppOptions): Promise<RunningApp> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const call = (service: string, headers: http.IncomingHttpHeaders): Promise<AppAnswer> =>
    new Promise((resolve, reject) => {
      const h: Record<string, string> = { host: `${service}:9080` };
      for (const k of PROPAGATED) if (typeof headers[k] === 'string') h[k] = headers[k];
      const req = http.request({ host: o.outbound.host, port: o.outbound.port, path: `/${service}`, headers: h, agent, timeout: 10_000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          if (res.statusCode === 200) resolve(JSON.parse(body) as AppAnswer);
          else reject(new Error(`${service}: ${res.statusCode} ${body.slice(0, 300)}`));
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`${service}: no answer within 10 s`)));
      req.on('error', (e) => reject(e.message.startsWith(`${service}:`) ? e : new Error(`${service}: ${e.message}`)));
      req.end();
    });
  const server = http.createServer({ keepAlive: true }, (req, res) => {
    req.resume();
    req.on('end', () => {
      const caller = peerFromXfcc(req.headers['x-forwarded-client-cert'] as string | undefined);
      Promise.all(o.upstreams.map((u) => call(u, req.headers))).then(
        (answers) => send(res, 200, { ...o.id, caller, calls: Object.fromEntries(o.upstreams.map((u, i) => [u, answers[i]!])) }),
        (e: unknown) => send(res, 502, { pod: o.id.pod, error: (e as Error).message }),
      );
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () =>
      resolve({
        port: (server.address() as { port: number }).port,
        close: () =>
          new Promise<void>((r) => {
            agent.destroy();
            server.close(() => r());
            server.closeAllConnections();
          }),
      }),
    );
  });
}

function send(res: http.ServerResponse, status: number, body: object): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
