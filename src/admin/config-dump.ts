// /config_dump: the decoded model as JSON, with inline key material redacted.
import type { Bootstrap, SocketAddress } from '../model/types.js';

const REDACTED = '[redacted]';

/** Replaces every inline DataSource value (and anything under a privateKey) with a marker; files stay named. */
function redact(v: unknown, underKey: boolean): unknown {
  if (Array.isArray(v)) return v.map((x) => redact(x, underKey));
  if (v === null || typeof v !== 'object') return v;
  const o = v as Record<string, unknown>;
  if (o.kind === 'inline' && typeof o.value === 'string') return { kind: 'inline', value: REDACTED };
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(o)) {
    const isKey = underKey || k === 'privateKey';
    out[k] = isKey && typeof x === 'string' ? REDACTED : redact(x, isKey);
  }
  return out;
}

export function redactedDump(b: Bootstrap, bound: { name: string; address: SocketAddress | undefined }[]): unknown {
  return {
    configs: [
      { '@type': 'outrigger.admin.BootstrapConfigDump', bootstrap: redact(b, false) },
      { '@type': 'outrigger.admin.ListenersConfigDump', bound_listeners: bound },
    ],
  };
}
