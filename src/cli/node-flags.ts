// V8 heap settings for a sidecar process, the same ones the `outrigger` executable's shebang carries.
//
// Why: a sidecar's live heap is ~25 MB, but V8's defaults (16 MB semi-spaces, old space doubling before a
// major GC) let it sit at 170-180 MB resident under 1000 req/s. With 2 MB semi-spaces and 20 % old-space
// growth steps it stays at ~95 MB on the bench (bench/RESULTS.md) for a few % of CPU in extra collections.
// Runtime v8.setFlagsFromString cannot change heap geometry after start, so these must be on the command
// line: the shebang for `outrigger ...`, and every place that spawns a sidecar with process.execPath.
export const SIDECAR_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2', '--heap-growing-percent=20'];
