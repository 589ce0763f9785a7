// The mesh CA's gRPC API, loaded from proto/: Istio's IstioCertificateService and Outrigger's TrustBundleService.
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

// src/identity and dist/identity are both two levels below the package root.
const PROTO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../proto');

export interface CertificateRequest {
  csr: string;
  /** seconds; proto-loader maps int64 to string with `longs: String` */
  validity_duration: string | number;
  metadata?: { fields?: Record<string, { string_value?: string }> } | null;
}

export interface CertificateResponse {
  cert_chain: string[];
}

export interface TrustBundleAck {
  instance: string;
  bundle_version: string;
  issuer_fingerprint: string;
}

export interface TrustBundleUpdate {
  bundle_version: string;
  roots: string[];
  issuer_fingerprint: string;
}

/** The control server's own SPIFFE ID; clients insist on it, so no other certificate under a shared root passes for the CA. */
export function controlSpiffeId(trustDomain: string): string {
  return `spiffe://${trustDomain}/ns/outrigger-system/sa/outrigger-control`;
}

/** The DNS name every control-server certificate carries (`outrigger control --server-name` adds more). */
export const DEFAULT_CA_SERVER_NAME = 'outrigger-control';


interface Loaded {
  certificate: grpc.ServiceClientConstructor;
  trustBundle: grpc.ServiceClientConstructor;
}

let loaded: Loaded | undefined;

/** Both services, parsed once per process. */
export function caServices(): Loaded {
  if (loaded) return loaded;
  const def = protoLoader.loadSync(['istio/v1/auth/ca.proto', 'outrigger/ca/v1/trust_bundle.proto'], {
    includeDirs: [PROTO_DIR],
    keepCase: true,
    longs: String,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    istio: { v1: { auth: { IstioCertificateService: grpc.ServiceClientConstructor } } };
    outrigger: { ca: { v1: { TrustBundleService: grpc.ServiceClientConstructor } } };
  };
  loaded = { certificate: pkg.istio.v1.auth.IstioCertificateService, trustBundle: pkg.outrigger.ca.v1.TrustBundleService };
  return loaded;
}

/** Reads `metadata.<key>` of a CertificateRequest (a google.protobuf.Struct). */
export function requestMetadata(req: CertificateRequest, key: string): string | undefined {
  return req.metadata?.fields?.[key]?.string_value || undefined;
}
