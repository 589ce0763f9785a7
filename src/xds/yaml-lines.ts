// Maps a field path (`a.b[2]["key"]`) to the line of its YAML node, so config issues can name file:line.
import { isAlias, isMap, isNode, isScalar, isSeq, type Document, type LineCounter } from 'yaml';
import { lowerCamel } from './json.js';

/** Field path segments: names, [index] and ["map key"]. */
const SEGMENT = /\.?([^.[\]]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]/g;

/**
 * The line of the YAML node a field path points at: the key's line for a field, the item's line for a list
 * entry. Envoy decoders name fields in snake_case, so a lowerCamelCase key matches too. A path that leaves the
 * document (a required field that is missing) stops at the deepest node that exists. `lines` must be the
 * LineCounter the document was parsed with; for a multi-document stream the line is relative to the stream.
 */
export function lineOf(doc: Document, lines: LineCounter, fieldPath: string): number | undefined {
  let node: unknown = doc.contents;
  let offset = isNode(node) ? node.range?.[0] : undefined;
  for (const [, name, index, key] of fieldPath.matchAll(SEGMENT)) {
    if (isAlias(node)) node = node.resolve(doc);
    if (index !== undefined) {
      if (!isSeq(node) || !isNode(node.items[Number(index)])) break;
      node = node.items[Number(index)];
      offset = isNode(node) ? node.range?.[0] : offset;
      continue;
    }
    const want = name ?? (JSON.parse(key!) as string);
    const pair = isMap(node) ? node.items.find((it) => isScalar(it.key) && (it.key.value === want || it.key.value === lowerCamel(want))) : undefined;
    if (!pair) break;
    offset = isNode(pair.key) ? pair.key.range?.[0] : offset;
    node = pair.value;
  }
  return offset === undefined ? undefined : lines.linePos(offset).line;
}
