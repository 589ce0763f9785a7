// Durations in the shapes Envoy and Istio use: proto3 JSON strings ("1.5s"), Duration messages, Istio "100ms".

/** google.protobuf.Duration as decoded by protobufjs (seconds may be a Long-ish string or number). */
export interface DurationMsg {
  seconds?: number | string | { toNumber(): number };
  nanos?: number;
}

export function durationMsgToMs(d: DurationMsg): number {
  const s = d.seconds;
  const secs = typeof s === 'object' && s !== null ? s.toNumber() : Number(s ?? 0);
  return secs * 1000 + (d.nanos ?? 0) / 1e6;
}

const UNITS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001, µs: 0.001, ns: 0.000001 };

/**
 * Parses "1.5s" (proto3 JSON) and Go-style "1m30s"/"100ms" (Istio). Returns undefined when malformed.
 * Negative durations are malformed for every field we accept.
 */
export function parseDurationMs(text: string): number | undefined {
  const t = text.trim();
  if (t === '' || t.startsWith('-')) return undefined;
  const re = /(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)/gy;
  let total = 0;
  let pos = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(t)) !== null) {
    total += Number(m[1]) * UNITS[m[2]!]!;
    pos = re.lastIndex;
  }
  return pos === t.length && pos > 0 ? total : undefined;
}
