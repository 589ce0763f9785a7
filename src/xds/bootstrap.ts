// Reads an Envoy v3 bootstrap (YAML or JSON) into the model; every issue names its file, line and field path.
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { ConfigError, errorMessage, type FieldIssue } from '../core/errors.js';
import type { Bootstrap } from '../model/types.js';
import { decodeCanonical } from './canonical.js';
import { joinPath, jsonToMessage, type PlainMessage } from './json.js';
import { lookupType } from './protos.js';
import { decodeBootstrapMessage, type XdsTarget } from './resources/bootstrap.js';
import { lineOf } from './yaml-lines.js';

export type { XdsTarget };

export interface BootstrapOptions {
  /** Named in every issue; relative DataSource filenames resolve against its directory. */
  readonly file?: string;
  /** Overrides the base directory for relative filenames (default: the file's directory, else the cwd). */
  readonly baseDir?: string;
  /** `--xds URL`: the control server, instead of dynamic_resources in the file. */
  readonly xds?: XdsTarget;
}

/** The path given to issues about the document as a whole (unreadable, not YAML, not an object). */
const DOCUMENT = '(document)';

/** Decodes a bootstrap already parsed into plain data (proto3 JSON shape). Throws ConfigError with every issue. */
export function decodeBootstrap(json: unknown, opts: BootstrapOptions = {}): Bootstrap {
  return decode(json, opts, () => undefined);
}

/** Reads, parses and decodes a YAML or JSON bootstrap file. Throws ConfigError whose issues carry file and line. */
export function loadBootstrapFile(file: string, opts: Pick<BootstrapOptions, 'xds'> = {}): Bootstrap {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError([{ path: DOCUMENT, message: `cannot read the bootstrap: ${errorMessage(e)}`, file }]);
  }
  // JSON is YAML too, so one parser gives line numbers for both; `<<` merge keys work as in Envoy's YAML loader.
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, merge: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map((e) => ({ path: DOCUMENT, message: e.message, file, line: lines.linePos(e.pos[0]).line })));
  }
  let json: unknown;
  try {
    json = doc.toJS();
  } catch (e) {
    // yaml refuses documents whose aliases expand excessively ("billion laughs").
    throw new ConfigError([{ path: DOCUMENT, message: errorMessage(e), file }]);
  }
  return decode(json, { ...opts, file }, (p) => lineOf(doc, lines, p));
}

function decode(json: unknown, opts: BootstrapOptions, lineOf: (path: string) => number | undefined): Bootstrap {
  const baseDir = opts.baseDir ?? (opts.file === undefined ? process.cwd() : path.dirname(path.resolve(opts.file)));
  const type = lookupType('envoy.config.bootstrap.v3.Bootstrap')!;
  // File DataSources are made absolute and checked while converting, where the user's spelling of the path is
  // known; a missing file does not stop decoding, so it is reported together with everything else.
  const fileIssues: FieldIssue[] = [];
  const hooks = { 'envoy.config.core.v3.DataSource': (m: PlainMessage, p: string) => resolveFile(m, p, baseDir, fileIssues) };
  const conv = jsonToMessage(type, json, '', { hooks });
  const decoded = conv.ok ? decodeBootstrapMessage(decodeCanonical(type, type.encode(conv.value).finish()), '', opts) : conv;
  if (decoded.ok && fileIssues.length === 0) return decoded.value;
  const issues = [...(decoded.ok ? [] : decoded.errors), ...fileIssues].map((i): FieldIssue => {
    const line = lineOf(i.path);
    return { ...i, path: i.path || DOCUMENT, ...(opts.file !== undefined && { file: opts.file }), ...(line !== undefined && { line }) };
  });
  throw new ConfigError(issues.sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity)));
}

function resolveFile(m: PlainMessage, p: string, baseDir: string, issues: FieldIssue[]): void {
  if (typeof m.filename !== 'string') return;
  const file = path.resolve(baseDir, m.filename);
  m.filename = file;
  const problem = fileProblem(file);
  if (problem) issues.push({ path: joinPath(p, 'filename'), message: problem });
}

function fileProblem(file: string): string | undefined {
  try {
    if (!statSync(file).isFile()) return `not a regular file: ${file}`;
    accessSync(file, constants.R_OK);
    return undefined;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? `file not found: ${file}` : `file not readable: ${file} (${code})`;
  }
}
