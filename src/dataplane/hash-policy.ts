// RouteAction.hash_policy on a request: the values the consistent-hash pickers (RING_HASH, MAGLEV) key on.
import type { HashPolicy } from '../model/types.js';
import { requestHash } from '../upstream/lb/index.js';
import { cookieValue } from './headers.js';

export interface HashSource {
  header(name: string): string | undefined;
  readonly path: string;
  readonly remoteIp: string;
}

function queryParameter(path: string, name: string): string | undefined {
  const q = path.indexOf('?');
  if (q < 0) return undefined;
  const v = new URLSearchParams(path.slice(q + 1)).get(name);
  return v ?? undefined;
}

/**
 * Envoy's walk over hash_policy: each policy that finds its value contributes it, in order; a terminal policy
 * that found one ends the walk. Nothing found → undefined, and the picker draws a random host. A cookie with a
 * ttl that is absent is not generated (Envoy would set one on the response); the request hashes on the rest.
 */
export function hashOf(policies: readonly HashPolicy[], src: HashSource): number | undefined {
  if (policies.length === 0) return undefined;
  const parts: string[] = [];
  for (const p of policies) {
    let v: string | undefined;
    if (p.kind === 'header') v = src.header(p.headerName.toLowerCase());
    else if (p.kind === 'cookie') v = cookieValue(src.header('cookie'), p.name);
    else if (p.kind === 'source_ip') v = src.remoteIp || undefined;
    else v = queryParameter(src.path, p.name);
    if (v === undefined) continue;
    parts.push(v);
    if (p.terminal) break;
  }
  return requestHash(parts);
}
