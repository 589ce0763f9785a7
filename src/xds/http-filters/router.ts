// envoy.filters.http.router (envoy.extensions.filters.http.router.v3.Router): the terminal HTTP filter.
import type { HttpFilterDecoder } from './index.js';
import { Issues, onlyFields } from '../resources/common.js';

export const ROUTER_TYPE_URL = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';

/** None of Router's knobs (dynamic_stats, upstream_log, suppress_envoy_headers, ...) are implemented yet. */
export const router: HttpFilterDecoder = {
  typeUrl: ROUTER_TYPE_URL,
  decode(o, path) {
    const issues = new Issues();
    onlyFields(o, path, [], issues);
    return issues.result(() => ({}));
  },
};
