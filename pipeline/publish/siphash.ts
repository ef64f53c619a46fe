// SipHash (Aumasson and Bernstein, https://131002.net/siphash/), the 64-bit variant with c
// compression and d finalisation rounds, on two 32-bit halves per 64-bit word (no BigInt in the
// hot path). The update-graph service needs SipHash-1-3 with zero keys: Rust's std DefaultHasher
// (DefaultHasher::new() is SipHasher13::new_with_keys(0, 0), rust-lang/rust
// library/std/src/hash/random.rs @bd8f431d), which fcos-policy-engine hashes node_uuid with
// (coreos/fedora-coreos-cincinnati fcos-policy-engine/src/main.rs:206-208 @95388bdf). Pure.

/** Result of one hash: the 64-bit value as its high and low 32-bit halves. */
export interface U64 {
  hi: number;
  lo: number;
}

const le32 = (b: Uint8Array, i: number) =>
  (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;

/**
 * SipHash-c-d of `msg` under the 128-bit key `k0 || k1` (each a little-endian u64, as Rust's
 * `new_with_keys(k0, k1)` takes them). Defaults: SipHash-1-3, zero keys.
 */
export function siphash(msg: Uint8Array, key: { k0: U64; k1: U64 } = ZERO_KEY, c = 1, d = 3): U64 {
  // v0..v3 as (high, low) pairs; the constants are "somepseudorandomlygeneratedbytes".
  let v0h = (key.k0.hi ^ 0x736f6d65) >>> 0;
  let v0l = (key.k0.lo ^ 0x70736575) >>> 0;
  let v1h = (key.k1.hi ^ 0x646f7261) >>> 0;
  let v1l = (key.k1.lo ^ 0x6e646f6d) >>> 0;
  let v2h = (key.k0.hi ^ 0x6c796765) >>> 0;
  let v2l = (key.k0.lo ^ 0x6e657261) >>> 0;
  let v3h = (key.k1.hi ^ 0x74656462) >>> 0;
  let v3l = (key.k1.lo ^ 0x79746573) >>> 0;

  const rounds = (n: number) => {
    for (let r = 0; r < n; r++) {
      let s: number;
      let t: number;
      // v0 += v1; v1 <<<= 13; v1 ^= v0; v0 <<<= 32
      s = v0l + v1l;
      v0h = (v0h + v1h + (s > 0xffffffff ? 1 : 0)) >>> 0;
      v0l = s >>> 0;
      t = ((v1h << 13) | (v1l >>> 19)) >>> 0;
      v1l = ((v1l << 13) | (v1h >>> 19)) >>> 0;
      v1h = t;
      v1h = (v1h ^ v0h) >>> 0;
      v1l = (v1l ^ v0l) >>> 0;
      t = v0h;
      v0h = v0l;
      v0l = t;
      // v2 += v3; v3 <<<= 16; v3 ^= v2
      s = v2l + v3l;
      v2h = (v2h + v3h + (s > 0xffffffff ? 1 : 0)) >>> 0;
      v2l = s >>> 0;
      t = ((v3h << 16) | (v3l >>> 16)) >>> 0;
      v3l = ((v3l << 16) | (v3h >>> 16)) >>> 0;
      v3h = t;
      v3h = (v3h ^ v2h) >>> 0;
      v3l = (v3l ^ v2l) >>> 0;
      // v0 += v3; v3 <<<= 21; v3 ^= v0
      s = v0l + v3l;
      v0h = (v0h + v3h + (s > 0xffffffff ? 1 : 0)) >>> 0;
      v0l = s >>> 0;
      t = ((v3h << 21) | (v3l >>> 11)) >>> 0;
      v3l = ((v3l << 21) | (v3h >>> 11)) >>> 0;
      v3h = t;
      v3h = (v3h ^ v0h) >>> 0;
      v3l = (v3l ^ v0l) >>> 0;
      // v2 += v1; v1 <<<= 17; v1 ^= v2; v2 <<<= 32
      s = v2l + v1l;
      v2h = (v2h + v1h + (s > 0xffffffff ? 1 : 0)) >>> 0;
      v2l = s >>> 0;
      t = ((v1h << 17) | (v1l >>> 15)) >>> 0;
      v1l = ((v1l << 17) | (v1h >>> 15)) >>> 0;
      v1h = t;
      v1h = (v1h ^ v2h) >>> 0;
      v1l = (v1l ^ v2l) >>> 0;
      t = v2h;
      v2h = v2l;
      v2l = t;
    }
  };

  const len = msg.length;
  const whole = len - (len % 8);
  for (let i = 0; i < whole; i += 8) {
    const ml = le32(msg, i);
    const mh = le32(msg, i + 4);
    v3h = (v3h ^ mh) >>> 0;
    v3l = (v3l ^ ml) >>> 0;
    rounds(c);
    v0h = (v0h ^ mh) >>> 0;
    v0l = (v0l ^ ml) >>> 0;
  }
  // The last block: the remaining bytes, little-endian, and the length mod 256 in the top byte.
  let bl = 0;
  let bh = (len & 0xff) << 24;
  for (let i = whole; i < len; i++) {
    const shift = 8 * (i - whole);
    if (shift < 32) bl |= msg[i]! << shift;
    else bh |= msg[i]! << (shift - 32);
  }
  bl >>>= 0;
  bh >>>= 0;
  v3h = (v3h ^ bh) >>> 0;
  v3l = (v3l ^ bl) >>> 0;
  rounds(c);
  v0h = (v0h ^ bh) >>> 0;
  v0l = (v0l ^ bl) >>> 0;
  v2l = (v2l ^ 0xff) >>> 0;
  rounds(d);
  return { hi: (v0h ^ v1h ^ v2h ^ v3h) >>> 0, lo: (v0l ^ v1l ^ v2l ^ v3l) >>> 0 };
}

const ZERO_KEY = { k0: { hi: 0, lo: 0 }, k1: { hi: 0, lo: 0 } };

/** A u64 as a BigInt (tests and messages; the service uses the halves). */
export const toBigInt = (v: U64) => (BigInt(v.hi) << 32n) | BigInt(v.lo);

/** A u64 from a BigInt (keys in tests). */
export const fromBigInt = (v: bigint): U64 => ({
  hi: Number((v >> 32n) & 0xffffffffn),
  lo: Number(v & 0xffffffffn),
});

/**
 * What Rust's `DefaultHasher::new()` gives for a `String` hashed with `Hash`: `str::hash` calls
 * `write_str`, which SipHasher13 implements as the UTF-8 bytes followed by one 0xff byte
 * (rust-lang/rust library/core/src/hash/sip.rs, `Hasher::write_str` @52666238), so it is
 * SipHash-1-3 with zero keys over `utf8(s) || 0xff`.
 */
export function rustDefaultHashOfString(s: string): U64 {
  const bytes = Buffer.from(s, 'utf8');
  const msg = new Uint8Array(bytes.length + 1);
  msg.set(bytes);
  msg[bytes.length] = 0xff;
  return siphash(msg);
}

/**
 * `digest as f64`: the u64 rounded to the nearest double (ties to even). hi * 2^32 is exact
 * (32 significant bits), so the one rounding is that of the sum, as Rust's cast rounds.
 */
export const u64ToF64 = (v: U64) => v.hi * 4294967296 + v.lo;
