// Loads the project's echo service (proto/outrigger/demo/v1/echo.proto) for the bench's gRPC client and server.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const PROTO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../proto');

export function loadEcho() {
  const def = protoLoader.loadSync('outrigger/demo/v1/echo.proto', { includeDirs: [PROTO_DIR], keepCase: true, defaults: true });
  return grpc.loadPackageDefinition(def).outrigger.demo.v1.Echo;
}
