// Request mirroring (RouteAction.request_mirror_policies): a fire-and-forget shadow copy of a request to
// another cluster. Its answer is discarded; nothing it does reaches the caller's response or latency.
import type { OutgoingHttpHeaders } from 'node:http';
import type { Writable } from 'node:stream';
import type { Clock } from '../core/clock.js';
import type { Rng } from '../core/rng.js';
import type { MirrorPolicy } from '../model/types.js';
import type { ClusterManager } from '../upstream/cluster-manager.js';
import type { BodyTap } from './replay-body.js';

export interface ShadowRequest {
  readonly method: string;
  /** The authority the main request goes upstream with; the shadow's gets `-shadow` added. */
  readonly authority: string;
  readonly path: string;
  /** The forwarded request headers (shared with the main request: not modified here). */
  readonly headers: OutgoingHttpHeaders;
  readonly hasBody: boolean;
  /** The route timeout bounds a shadow too, as in Envoy; 0 = none. */
  readonly timeoutMs: number;
  /** How many body bytes a shadow may hold back before it is dropped rather than slow anything down. */
  readonly maxBacklogBytes: number;
}

export interface MirrorDeps {
  readonly clusters: ClusterManager;
  readonly rng: Rng;
  readonly clock: Clock;
  /** Counts each shadow's fate: sent (answered, any status), failed (no answer), dropped (backlog), skipped (no cluster/host). */
  readonly count: (cluster: string, outcome: 'sent' | 'failed' | 'dropped' | 'skipped') => void;
}

/**
 * Envoy's shadow host: `-shadow` is appended to the host, before a port if there is one
 * ("reviews:9080" -> "reviews-shadow:9080"; an IPv6 literal's colons are inside its brackets).
 */
export function shadowAuthority(authority: string): string {
  const close = authority.lastIndexOf(']');
  const colon = authority.lastIndexOf(':');
  if (colon > close && /^:[0-9]*$/.test(authority.slice(colon))) return `${authority.slice(0, colon)}-shadow${authority.slice(colon)}`;
  return `${authority}-shadow`;
}

/** Does this request get mirrored under this policy? A uniform draw against runtime_fraction's default. */
export function sampled(p: MirrorPolicy, rng: Rng): boolean {
  return p.numerator >= p.denominator || rng.int(p.denominator) < p.numerator;
}

/** Starts the shadow copies a request's route asks for; each returns a tap for the request body (if any). */
export function startMirrors(policies: readonly MirrorPolicy[], req: ShadowRequest, d: MirrorDeps): BodyTap[] {
  const taps: BodyTap[] = [];
  for (const p of policies) {
    if (!sampled(p, d.rng)) continue;
    const tap = startShadow(p.cluster, req, d);
    if (tap) taps.push(tap);
  }
  return taps;
}

function startShadow(clusterName: string, req: ShadowRequest, d: MirrorDeps): BodyTap | undefined {
  const ep = d.clusters.get(clusterName)?.pick(undefined);
  if (!ep) {
    d.count(clusterName, 'skipped');
    return undefined;
  }
  let over = false;
  let sink: Writable | null = null;
  let abort: (() => void) | undefined;
  /** Body bytes that arrived before the shadow stream was open. */
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let ended = false;
  let timer: ReturnType<Clock['setTimeout']> | undefined;
  const done = (outcome: 'sent' | 'failed' | 'dropped') => {
    if (over) return;
    over = true;
    if (timer) d.clock.clearTimeout(timer);
    ep.rqActive--;
    if (outcome !== 'sent') abort?.();
    pending = [];
    d.count(clusterName, outcome);
  };
  if (req.timeoutMs > 0) timer = d.clock.setTimeout(() => done('failed'), req.timeoutMs);
  ep.rqActive++;
  ep.rqTotal++;
  ep.pool
    .open(
      { method: req.method, authority: shadowAuthority(req.authority), path: req.path, scheme: 'https', headers: req.headers, endStream: !req.hasBody, cancelled: () => over },
      {
        onResponse: (_status, _headers, body) => {
          body.resume();
          body.once('end', () => done('sent'));
        },
        onTrailers: () => {},
        onError: () => done('failed'),
      },
    )
    .then(
      (up) => {
        abort = () => up.abort();
        if (over) return up.abort();
        sink = up.sink;
        if (!sink) return;
        sink.on('error', () => done('failed'));
        for (const c of pending) sink.write(c);
        pending = [];
        if (ended) sink.end();
      },
      () => done('failed'),
    );
  if (!req.hasBody) return undefined;
  return {
    data(c) {
      if (over) return;
      // A shadow that cannot keep up is dropped: the caller's body is never held back for it.
      if (sink) {
        sink.write(c);
        if (sink.writableLength > req.maxBacklogBytes) done('dropped');
        return;
      }
      pendingBytes += c.length;
      if (pendingBytes > req.maxBacklogBytes) return done('dropped');
      pending.push(c);
    },
    end() {
      ended = true;
      if (!over) sink?.end();
    },
    abort() {
      done('failed');
    },
  };
}
