// The consistent-hash function for RING_HASH and MAGLEV (host positions) and for requests (hash_policy values).
//
// Why not Envoy's xxHash64: it needs 64-bit multiplication, which plain JS does only through BigInt (an
// allocation and ~20x the cost per hash), and exact ring positions are not a user contract: what users rely
// on is that a key keeps its host while the host set is stable, and moves only when its ring neighbour
// changes. So this is a 53-bit hash (the largest integer a JS number holds exactly): two 32-bit
// multiply-rotate lanes over the UTF-16 code units, each finished with MurmurHash3's fmix32 avalanche and
// cross-mixed, so every input bit reaches every output bit. 53 bits keep ring collisions negligible even
// at the 8M-entry maximum ring size.

const TWO_32 = 4294967296;

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

// The running state of one hash, kept in module variables so hashing a request allocates nothing.
let lo = 0;
let hi = 0;

function begin(seed: number): void {
  lo = (0x243f6a88 ^ seed) | 0;
  hi = (0x85a308d3 ^ Math.imul(seed, 0x9e3779b1)) | 0;
}

function feed(s: string): void {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    lo = Math.imul(lo ^ c, 0x9e3779b1);
    lo = (lo << 13) | (lo >>> 19);
    hi = Math.imul(hi ^ c, 0x85ebca77);
    hi = (hi << 17) | (hi >>> 15);
  }
  // The length separates "ab","c" from "a","bc" when several values are fed.
  lo = Math.imul(lo ^ s.length, 0xc2b2ae3d);
  hi = Math.imul(hi ^ ~s.length, 0x27d4eb2f);
}

function finish(): number {
  const a = fmix32(lo ^ Math.imul(hi, 0x165667b1));
  const b = fmix32(hi ^ a);
  return (b & 0x1fffff) * TWO_32 + a;
}

/** A 53-bit hash of one string (an integer in [0, 2^53)); `seed` gives independent hash functions (Maglev's offset and skip). */
export function hash53(s: string, seed = 0): number {
  begin(seed);
  feed(s);
  return finish();
}

/**
 * The request hash from the values the route's hash_policy extracted (header, cookie, source IP), in policy
 * order. Undefined when nothing was extracted: Envoy then picks as if no hash policy applied (a random host).
 */
export function requestHash(parts: readonly string[]): number | undefined {
  if (parts.length === 0) return undefined;
  begin(0x5bd1e995);
  for (let i = 0; i < parts.length; i++) feed(parts[i]!);
  return finish();
}

/** Uniform in [0, 2^53) from the injected rng: the stand-in hash when a request has none. */
export function randomHash(next: () => number): number {
  return Math.floor(next() * 0x200000) * TWO_32 + Math.floor(next() * TWO_32);
}
