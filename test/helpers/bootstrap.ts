// Decodes an Envoy-shaped bootstrap object through the real decoders (the same path as `--config FILE`).
import { decodeBootstrap } from '../../src/xds/bootstrap.js';
import type { Bootstrap } from '../../src/model/types.js';

export function decodeBootstrapObject(obj: object): Bootstrap {
  return decodeBootstrap(obj, { file: 'test-bootstrap.json' });
}
