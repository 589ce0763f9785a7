// Typed reads of a mesh document's plain data (parsed YAML): every unknown field, wrong type and bad value by path.
import { parseDurationMs } from '../../core/duration.js';
import { describe, isObject, joinPath, lowerCamel } from '../../xds/json.js';
import { Issues } from '../../xds/resources/common.js';

export type Obj = Readonly<Record<string, unknown>>;

/** The fields one Istio message accepts, and the ones Istio has that Outrigger does not implement yet. */
export interface Shape {
  readonly fields: readonly string[];
  /** Rejected with "not supported yet": a user who wrote them expects them to act, so they are never dropped. */
  readonly notYet?: readonly string[];
  /** Fields Istio deprecated, with what to write instead. */
  readonly deprecated?: Readonly<Record<string, string>>;
}

/** `base.key`, or `base["key"]` for map keys that are not plain words (label keys such as app.kubernetes.io/name). */
export function keyPath(base: string, key: string): string {
  return /^[A-Za-z0-9][A-Za-z0-9_-]*$/.test(key) ? joinPath(base, key) : `${base}[${JSON.stringify(key)}]`;
}

/** An object without its undefined entries, so the model's optional fields are absent rather than undefined. */
export function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** Kubernetes label keys: an optional DNS-subdomain prefix and '/', then a name of up to 63 characters. */
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** RFC 1123 label as Kubernetes checks it (IsDNS1123Label): lowercase alphanumerics and '-', at most 63. */
export function dnsLabelProblem(s: string): string | undefined {
  if (s.length > 63) return `${JSON.stringify(s)} is longer than 63 characters`;
  return DNS_LABEL.test(s) ? undefined : `${JSON.stringify(s)} is not a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit)`;
}

/** RFC 1123 subdomain (IsDNS1123Subdomain): dot-separated labels, at most 253 characters. */
export function dnsSubdomainProblem(s: string): string | undefined {
  if (s.length > 253) return `${JSON.stringify(s)} is longer than 253 characters`;
  return s.split('.').every((l) => DNS_LABEL.test(l)) ? undefined : `${JSON.stringify(s)} is not a DNS-1123 name (lowercase letters, digits, '-' and '.')`;
}

function labelKeyProblem(k: string): string | undefined {
  const slash = k.lastIndexOf('/');
  const [prefix, name] = slash < 0 ? [undefined, k] : [k.slice(0, slash), k.slice(slash + 1)];
  if (prefix !== undefined && (prefix === '' || dnsSubdomainProblem(prefix))) return `label key ${JSON.stringify(k)}: the prefix must be a DNS-1123 name`;
  if (name.length > 63 || !LABEL_NAME.test(name)) return `label key ${JSON.stringify(k)}: the name must be 1..63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`;
  return undefined;
}

function labelValueProblem(v: string): string | undefined {
  if (v === '' || (v.length <= 63 && LABEL_NAME.test(v))) return undefined;
  return `label value ${JSON.stringify(v)} must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`;
}

export interface DurationRule {
  /** tcp.idleTimeout and httpCookie.ttl accept 0s (disabled / session cookie); every other Istio duration is >= 1ms. */
  readonly zeroOk?: boolean;
}

/**
 * Reads fields off plain objects, recording an issue for anything out of shape. A read that fails returns
 * undefined; the caller builds its value anyway and the document is rejected because `issues` is non-empty.
 * YAML `key:` with no value (null) reads as unset, as proto3 JSON and Kubernetes treat it.
 */
export class Reader {
  constructor(readonly issues: Issues = new Issues()) {}

  issue(path: string, message: string): undefined {
    this.issues.add(path, message);
    return undefined;
  }

  /** `v` as an object of `shape`; unknown keys are errors (with a hint when only the spelling is off). */
  object(v: unknown, path: string, shape: Shape): Obj | undefined {
    if (!isObject(v)) return this.issue(path, `expected an object, got ${describe(v)}`);
    for (const key of Object.keys(v)) {
      if (shape.fields.includes(key)) continue;
      if (shape.notYet?.includes(key)) {
        this.issue(joinPath(path, key), 'not supported yet');
        continue;
      }
      if (shape.deprecated && Object.hasOwn(shape.deprecated, key)) {
        this.issue(joinPath(path, key), `deprecated in Istio and not supported; ${shape.deprecated[key]}`);
        continue;
      }
      const near = [...shape.fields, ...(shape.notYet ?? [])].find((f) => f.toLowerCase() === lowerCamel(key).toLowerCase());
      this.issue(keyPath(path, key), near ? `unknown field (did you mean ${near}?)` : 'unknown field');
    }
    return v;
  }

  /** An optional nested object at `key` (absent or null = undefined), with the path its own fields are read at. */
  optionalObject(o: Obj, key: string, base: string, shape: Shape): { readonly obj: Obj; readonly path: string } | undefined {
    if (o[key] === undefined || o[key] === null) return undefined;
    const path = joinPath(base, key);
    const obj = this.object(o[key], path, shape);
    return obj && { obj, path };
  }

  /** A field that must be present (not null). */
  need(o: Obj, key: string, base: string): boolean {
    if (o[key] !== undefined && o[key] !== null) return true;
    this.issue(joinPath(base, key), 'is required');
    return false;
  }

  string(o: Obj, key: string, base: string, check?: (s: string) => string | undefined): string | undefined {
    return this.stringValue(o[key], joinPath(base, key), check);
  }

  stringValue(v: unknown, path: string, check?: (s: string) => string | undefined): string | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') return this.issue(path, `expected a string, got ${describe(v)}`);
    const problem = check?.(v);
    return problem ? this.issue(path, problem) : v;
  }

  /** An integer in [min, max] (Istio's int32/uint32 fields and the ranges its validation adds). */
  int(o: Obj, key: string, base: string, min: number, max: number): number | undefined {
    return this.intValue(o[key], joinPath(base, key), min, max);
  }

  intValue(v: unknown, path: string, min: number, max: number): number | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v)) return this.issue(path, `expected an integer, got ${describe(v)}`);
    return v < min || v > max ? this.issue(path, `must be ${min}..${max}`) : v;
  }

  bool(o: Obj, key: string, base: string): boolean | undefined {
    const v = o[key];
    if (v === undefined || v === null) return undefined;
    return typeof v === 'boolean' ? v : this.issue(joinPath(base, key), `expected true or false, got ${describe(v)}`);
  }

  /**
   * An Istio duration ("5s", "250ms", "1h", "1m30s"; Go's time.ParseDuration syntax, which also reads proto3
   * JSON's "1.5s") in ms. Istio's ValidateDuration: at least 1ms and a whole number of ms.
   */
  duration(o: Obj, key: string, base: string, rule: DurationRule = {}): number | undefined {
    const text = this.string(o, key, base);
    if (text === undefined) return undefined;
    const path = joinPath(base, key);
    const raw = parseDurationMs(text);
    if (raw === undefined) return this.issue(path, `invalid duration ${JSON.stringify(text)} (write it as Istio does: 5s, 250ms, 1m30s, 1h)`);
    // Sub-ms parts are decimal fractions; rounding away binary noise first keeps "1.1s" a whole 1100 ms.
    const ms = Math.round(raw * 1e6) / 1e6;
    if (ms === 0 && rule.zeroOk) return 0;
    if (ms < 1) return this.issue(path, 'must be at least 1ms');
    return Number.isInteger(ms) ? ms : this.issue(path, 'only durations to ms precision are supported');
  }

  /** One of `values`; `unsupported` names Istio values Outrigger rejects, with the reason. */
  enumOf<T extends string>(o: Obj, key: string, base: string, values: readonly T[], unsupported: Readonly<Record<string, string>> = {}): T | undefined {
    const v = this.string(o, key, base);
    if (v === undefined) return undefined;
    if ((values as readonly string[]).includes(v)) return v as T;
    const path = joinPath(base, key);
    if (Object.hasOwn(unsupported, v)) return this.issue(path, `${v}: ${unsupported[v]}`);
    return this.issue(path, `${JSON.stringify(v)} is not one of ${[...values, ...Object.keys(unsupported)].join(', ')}`);
  }

  /** A list; `item` reads each entry at `key[i]`. Absent = []. */
  list<T>(o: Obj, key: string, base: string, item: (v: unknown, path: string, i: number) => T | undefined): T[] {
    const v = o[key];
    if (v === undefined || v === null) return [];
    const path = joinPath(base, key);
    if (!Array.isArray(v)) return this.issue(path, `expected a list, got ${describe(v)}`) ?? [];
    return v.flatMap((x, i) => {
      const r = item(x, `${path}[${i}]`, i);
      return r === undefined ? [] : [r];
    });
  }

  strings(o: Obj, key: string, base: string, check?: (s: string) => string | undefined): string[] {
    return this.list(o, key, base, (v, p) => this.stringValue(v, p, check));
  }

  /** A map keyed by string; `value` reads each entry at `key.<k>` (or `key["k"]`). Absent = undefined. */
  map<T>(o: Obj, key: string, base: string, value: (v: unknown, path: string, k: string) => T | undefined): Record<string, T> | undefined {
    const v = o[key];
    if (v === undefined || v === null) return undefined;
    const path = joinPath(base, key);
    if (!isObject(v)) return this.issue(path, `expected an object (a map), got ${describe(v)}`);
    const out: Record<string, T> = {};
    for (const [k, x] of Object.entries(v)) {
      const r = value(x, keyPath(path, k), k);
      if (r !== undefined) out[k] = r;
    }
    return out;
  }

  /** Kubernetes labels (metadata.labels, WorkloadEntry labels, selectors, subset labels), checked as Kubernetes does. */
  labels(o: Obj, key: string, base: string): Record<string, string> | undefined {
    return this.map(o, key, base, (v, p, k) => {
      const keyProblem = labelKeyProblem(k);
      if (keyProblem) return this.issue(p, keyProblem);
      return this.stringValue(v, p, labelValueProblem);
    });
  }
}
