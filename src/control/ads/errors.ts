// Why the ADS server ends a stream: a stable code, the gRPC status the client sees, and a bounded reason for the metric.
import * as grpc from '@grpc/grpc-js';
import { OutriggerError } from '../../core/errors.js';

/** Bounded: these are outrigger_xds_refusals_total{reason} label values. */
export type AdsRefusalReason =
  | 'node_missing'
  | 'node_invalid'
  | 'no_client_cert'
  | 'svid_invalid'
  | 'identity_mismatch'
  | 'malformed_request'
  | 'type_url_missing'
  | 'internal';

/** code is ADS_<REASON> (ADS_IDENTITY_MISMATCH, ...); status is what the stream ends with. */
export class AdsRefusal extends OutriggerError {
  constructor(
    readonly status: grpc.status,
    readonly reason: AdsRefusalReason,
    message: string,
    cause?: unknown,
  ) {
    super(`ADS_${reason.toUpperCase()}`, message, { cause, details: { reason } });
    this.name = 'AdsRefusal';
  }
}
