// SPIFFE IDs per the SPIFFE-ID spec (https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md).
import { IdentityError } from './errors.js';

export interface SpiffeId {
  readonly trustDomain: string;
  /** The path, with its leading "/" ("" for a trust domain's own ID). */
  readonly path: string;
  readonly uri: string;
}

const TD_CHARS = /^[a-z0-9._-]+$/;
const SEGMENT_CHARS = /^[A-Za-z0-9._-]+$/;

function bad(id: string, rule: string): never {
  throw new IdentityError('SPIFFE_ID_INVALID', `invalid SPIFFE ID ${JSON.stringify(id)}: ${rule}`, { details: { rule } });
}

/** Parses and validates; the error message names the rule that was broken (SPIFFE-ID §2). */
export function parseSpiffeId(id: string): SpiffeId {
  // §2.3: maximum length 2048 bytes of the URI.
  if (Buffer.byteLength(id) > 2048) bad(id, 'longer than 2048 bytes (§2.3)');
  if (!id.startsWith('spiffe://')) bad(id, 'scheme must be "spiffe" in lowercase (§2)');
  const rest = id.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  const td = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? '' : rest.slice(slash);
  if (td === '') bad(id, 'trust domain is empty (§2.1)');
  if (td.length > 255) bad(id, 'trust domain longer than 255 characters (§2.1)');
  if (/[@:]/.test(td)) bad(id, 'trust domain must not carry userinfo or a port (§2.1)');
  if (!TD_CHARS.test(td)) bad(id, 'trust domain may only contain lowercase letters, digits, ".", "-" and "_" (§2.1)');
  if (/[?#]/.test(path)) bad(id, 'query and fragment are not allowed (§2)');
  if (path !== '') {
    if (path.endsWith('/')) bad(id, 'path must not end with "/" (§2.2)');
    for (const seg of path.slice(1).split('/')) {
      if (seg === '') bad(id, 'path segments must not be empty (§2.2)');
      if (seg === '.' || seg === '..') bad(id, 'path segments must not be "." or ".." (§2.2)');
      if (!SEGMENT_CHARS.test(seg)) bad(id, `path segment ${JSON.stringify(seg)} may only contain letters, digits, ".", "-" and "_" (§2.2)`);
    }
  }
  return Object.freeze({ trustDomain: td, path, uri: id });
}

/** Istio's workload identity shape: spiffe://<td>/ns/<ns>/sa/<sa>. */
export function workloadId(trustDomain: string, namespace: string, serviceAccount: string): SpiffeId {
  return parseSpiffeId(`spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`);
}
