// Decodes envoy.extensions.transport_sockets.tls.v3 Downstream/UpstreamTlsContext (and their transport_socket).
import type { FieldIssue } from '../../core/errors.js';
import type { Result } from '../../core/result.js';
import type { CommonTls, DownstreamTls, StringMatcher, TlsCertificate, UpstreamTls, ValidationContext } from '../../model/types.js';
import type { ProtoObj } from '../canonical.js';
import { Issues, boolValue, dataSource, joinPath, list, msg, onlyFields, requireOne, str, strings } from './common.js';
import { decodeStringMatcher } from './matchers.js';

export const DOWNSTREAM_TLS_CONTEXT_TYPE_URL = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
export const UPSTREAM_TLS_CONTEXT_TYPE_URL = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';

export function decodeDownstreamTlsContext(o: ProtoObj, path: string): Result<DownstreamTls, FieldIssue> {
  const issues = new Issues();
  onlyFields(o, path, ['common_tls_context', 'require_client_certificate'], issues);
  const common = commonTls(msg(o, 'common_tls_context') ?? {}, joinPath(path, 'common_tls_context'), issues);
  if (common.certificates.length === 0 && !common.sdsCertificate) issues.add(joinPath(path, 'common_tls_context.tls_certificates'), 'a server certificate is required (tls_certificates or tls_certificate_sds_secret_configs)');
  const requireClientCertificate = boolValue(o, 'require_client_certificate') ?? false;
  // Envoy refuses this too: a client certificate that nothing verifies would admit anyone.
  if (requireClientCertificate && !common.validation) {
    issues.add(joinPath(path, 'require_client_certificate'), 'needs common_tls_context.validation_context to verify the client certificate');
  }
  return issues.result(() => ({ common, requireClientCertificate }));
}

export function decodeUpstreamTlsContext(o: ProtoObj, path: string): Result<UpstreamTls, FieldIssue> {
  const issues = new Issues();
  onlyFields(o, path, ['common_tls_context', 'sni'], issues);
  const common = commonTls(msg(o, 'common_tls_context') ?? {}, joinPath(path, 'common_tls_context'), issues);
  return issues.result(() => ({ common, sni: str(o, 'sni') }));
}

/** Istio's SDS secret names; the sidecar's identity manager serves exactly these two. */
export const SDS_CERTIFICATE = 'default';
export const SDS_BUNDLE = 'ROOTCA';

/**
 * SdsSecretConfig naming a secret the identity manager resolves. An sds_config would point at an SDS
 * server we do not speak to, so it is refused rather than silently ignored.
 */
function sdsName(o: ProtoObj, path: string, expected: string, issues: Issues): string {
  onlyFields(o, path, ['name'], issues);
  const name = str(o, 'name');
  if (name !== expected) issues.add(joinPath(path, 'name'), `must be ${JSON.stringify(expected)} (the identity manager serves Istio's secret names "${SDS_CERTIFICATE}" and "${SDS_BUNDLE}"), not ${JSON.stringify(name)}`);
  return name;
}

/** CommonTlsContext: certificates from files, inline PEM or SDS; a validation context; ALPN. */
function commonTls(o: ProtoObj, path: string, issues: Issues): CommonTls {
  onlyFields(o, path, ['tls_certificates', 'tls_certificate_sds_secret_configs', 'validation_context', 'validation_context_sds_secret_config', 'combined_validation_context', 'alpn_protocols'], issues);
  const certificates = list(o, 'tls_certificates').map((c, i): TlsCertificate => {
    const p = joinPath(path, `tls_certificates[${i}]`);
    onlyFields(c, p, ['certificate_chain', 'private_key'], issues);
    return {
      certificateChain: dataSource(msg(c, 'certificate_chain'), joinPath(p, 'certificate_chain'), issues),
      privateKey: dataSource(msg(c, 'private_key'), joinPath(p, 'private_key'), issues),
    };
  });
  const sdsCerts = list(o, 'tls_certificate_sds_secret_configs');
  if (sdsCerts.length > 1) issues.add(joinPath(path, 'tls_certificate_sds_secret_configs'), 'at most one SDS certificate is supported');
  if (sdsCerts.length && certificates.length) issues.add(joinPath(path, 'tls_certificate_sds_secret_configs'), 'set either tls_certificates or tls_certificate_sds_secret_configs, not both');
  const sdsCertificate = sdsCerts[0] && sdsName(sdsCerts[0], joinPath(path, 'tls_certificate_sds_secret_configs[0]'), SDS_CERTIFICATE, issues);
  const validation = validationOf(o, path, issues);
  // One source of truth per context: an SDS SVID checked against a file bundle (or the reverse) would
  // silently stop matching after the first root rotation.
  if (validation && (validation.sdsBundle !== undefined) !== (sdsCertificate !== undefined) && (sdsCertificate !== undefined || certificates.length > 0)) {
    issues.add(path, `the certificate and the trust bundle must both come from SDS ("${SDS_CERTIFICATE}" and "${SDS_BUNDLE}") or both from files`);
  }
  return {
    certificates,
    ...(sdsCertificate !== undefined && { sdsCertificate }),
    ...(validation && { validation }),
    alpnProtocols: strings(o, 'alpn_protocols'),
  };
}

/**
 * The three ways Envoy spells a validation context: static, SDS by name, or Istio's combined form
 * (static SAN matchers + the SDS bundle).
 */
function validationOf(o: ProtoObj, path: string, issues: Issues): ValidationContext | undefined {
  // The proto's oneof validation_context_type already refused more than one of these.
  const v = msg(o, 'validation_context');
  if (v) {
    const p = joinPath(path, 'validation_context');
    const ctx = validationContext(v, p, issues);
    if (!ctx.trustedCa) issues.add(joinPath(p, 'trusted_ca'), 'is required');
    return ctx;
  }
  const sds = msg(o, 'validation_context_sds_secret_config');
  if (sds) return { sdsBundle: sdsName(sds, joinPath(path, 'validation_context_sds_secret_config'), SDS_BUNDLE, issues), uriSanMatchers: [] };
  const c = msg(o, 'combined_validation_context');
  if (!c) return undefined;
  const p = joinPath(path, 'combined_validation_context');
  onlyFields(c, p, ['default_validation_context', 'validation_context_sds_secret_config'], issues);
  const base = validationContext(msg(c, 'default_validation_context') ?? {}, joinPath(p, 'default_validation_context'), issues);
  if (base.trustedCa) issues.add(joinPath(p, 'default_validation_context.trusted_ca'), 'the combined form takes its roots from the SDS bundle; set trusted_ca in a plain validation_context instead');
  const s = msg(c, 'validation_context_sds_secret_config');
  requireOne(c, p, ['validation_context_sds_secret_config'], true, issues);
  return { sdsBundle: s ? sdsName(s, joinPath(p, 'validation_context_sds_secret_config'), SDS_BUNDLE, issues) : SDS_BUNDLE, uriSanMatchers: base.uriSanMatchers };
}

/** CertificateValidationContext: trusted_ca, and SAN checks on URI SANs only (where SPIFFE IDs live). */
function validationContext(o: ProtoObj, path: string, issues: Issues): ValidationContext {
  onlyFields(o, path, ['trusted_ca', 'match_typed_subject_alt_names'], issues);
  const uriSanMatchers = list(o, 'match_typed_subject_alt_names').map((m, i) => {
    const p = joinPath(path, `match_typed_subject_alt_names[${i}]`);
    onlyFields(m, p, ['san_type', 'matcher'], issues);
    const sanType = m.san_type ?? 'SAN_TYPE_UNSPECIFIED';
    if (sanType !== 'URI') issues.add(joinPath(p, 'san_type'), `${String(sanType)} is not supported (only URI)`);
    requireOne(m, p, ['matcher'], true, issues);
    const matcher = msg(m, 'matcher');
    return matcher && issues.take(decodeStringMatcher(matcher, joinPath(p, 'matcher')));
  });
  const ca = msg(o, 'trusted_ca');
  return {
    ...(ca && { trustedCa: dataSource(ca, joinPath(path, 'trusted_ca'), issues) }),
    uriSanMatchers: uriSanMatchers as StringMatcher[],
  };
}
