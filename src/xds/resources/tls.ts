// Decodes envoy.extensions.transport_sockets.tls.v3 Downstream/UpstreamTlsContext (and their transport_socket).
import type { FieldIssue } from '../../core/errors.js';
import type { Result } from '../../core/result.js';
import type { CommonTls, DownstreamTls, StringMatcher, TlsCertificate, UpstreamTls, ValidationContext } from '../../model/types.js';
import type { ProtoObj } from '../canonical.js';
import { Issues, boolValue, dataSource, joinPath, list, msg, onlyFields, requireOne, required, str, strings } from './common.js';
import { decodeStringMatcher } from './matchers.js';

export const DOWNSTREAM_TLS_CONTEXT_TYPE_URL = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
export const UPSTREAM_TLS_CONTEXT_TYPE_URL = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';

export function decodeDownstreamTlsContext(o: ProtoObj, path: string): Result<DownstreamTls, FieldIssue> {
  const issues = new Issues();
  onlyFields(o, path, ['common_tls_context', 'require_client_certificate'], issues);
  const common = commonTls(msg(o, 'common_tls_context') ?? {}, joinPath(path, 'common_tls_context'), issues);
  if (common.certificates.length === 0) issues.add(joinPath(path, 'common_tls_context.tls_certificates'), 'a server certificate is required');
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

/** CommonTlsContext: certificates from files or inline PEM, a validation context, ALPN. */
function commonTls(o: ProtoObj, path: string, issues: Issues): CommonTls {
  onlyFields(o, path, ['tls_certificates', 'validation_context', 'alpn_protocols'], issues);
  const certificates = list(o, 'tls_certificates').map((c, i): TlsCertificate => {
    const p = joinPath(path, `tls_certificates[${i}]`);
    onlyFields(c, p, ['certificate_chain', 'private_key'], issues);
    return {
      certificateChain: dataSource(msg(c, 'certificate_chain'), joinPath(p, 'certificate_chain'), issues),
      privateKey: dataSource(msg(c, 'private_key'), joinPath(p, 'private_key'), issues),
    };
  });
  const v = msg(o, 'validation_context');
  return {
    certificates,
    ...(v && { validation: validationContext(v, joinPath(path, 'validation_context'), issues) }),
    alpnProtocols: strings(o, 'alpn_protocols'),
  };
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
  return {
    trustedCa: dataSource(msg(o, 'trusted_ca'), joinPath(path, 'trusted_ca'), issues),
    uriSanMatchers: uriSanMatchers as StringMatcher[],
  };
}
