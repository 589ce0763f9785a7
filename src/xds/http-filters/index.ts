// The HTTP filter registry: one file per filter, keyed by its typed_config type URL. Adding one = a file + a line.
import type { FieldIssue } from '../../core/errors.js';
import type { Result } from '../../core/result.js';
import type { ProtoObj } from '../canonical.js';
import { localRateLimit } from './local-ratelimit.js';
import { router } from './router.js';

export interface HttpFilterDecoder {
  /** The type URL of the filter's typed_config, e.g. type.googleapis.com/envoy.extensions.filters.http.router.v3.Router */
  readonly typeUrl: string;
  /** The unpacked typed_config (canonical shape) -> the filter's frozen config, or every issue at its path. */
  decode(config: ProtoObj, path: string): Result<Readonly<Record<string, unknown>>, FieldIssue>;
}

const REGISTRY: ReadonlyMap<string, HttpFilterDecoder> = new Map([localRateLimit, router].map((f) => [f.typeUrl, f]));

export function httpFilterDecoder(typeUrl: string): HttpFilterDecoder | undefined {
  return REGISTRY.get(typeUrl);
}
