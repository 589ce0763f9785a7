// The sidecar's V8 heap flags: the executable's shebang carries exactly SIDECAR_NODE_FLAGS, and Node accepts
// them and sizes the young generation by them (a typo would make `outrigger` refuse to start).
import t from 'tap';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { SIDECAR_NODE_FLAGS } from '../../src/cli/node-flags.js';

const run = promisify(execFile);
const MAIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.ts');

t.test('the shebang of the executable carries the sidecar flags', async (t) => {
  const first = readFileSync(MAIN, 'utf8').split('\n', 1)[0];
  t.equal(first, `#!/usr/bin/env -S node ${SIDECAR_NODE_FLAGS.join(' ')}`);
});

t.test('node accepts the flags and keeps the young generation small under allocation', async (t) => {
  const probe = `let k=[];const t0=Date.now();while(Date.now()-t0<300){k.push({a:new Array(20).fill(1)});if(k.length>2000)k=[]}
const s=require('v8').getHeapSpaceStatistics().find(x=>x.space_name==='new_space');console.log(s.space_size)`;
  const withFlags = Number((await run(process.execPath, [...SIDECAR_NODE_FLAGS, '-e', probe])).stdout);
  const without = Number((await run(process.execPath, ['-e', probe])).stdout);
  t.ok(withFlags <= 4 * 1024 * 1024, `new space ${withFlags} B with the flags`);
  t.ok(without > withFlags, `new space ${without} B without them`);
});
