// The FCOS-sized base of `npm run bench` (issue 19): boot-base.ts's bootable base (Debian kernel,
// tiny init) grown to the size of a Fedora CoreOS image: about 1.7 GiB unpacked, 40,000 files in
// 64 layers. The filler is generated from a fixed seed, so the same inputs give the same tree:
// a fifth of the small files random bytes (stand-ins for binaries and firmware), the rest
// text-like lines of made-up words, and one large file per layer half random, half text, so
// that compression figures mean something (the tree compresses about 2:1, as FCOS's does).
// Layered with real buildah (`buildah build --layers`, one COPY per layer over the boot base),
// cached by a hash of its inputs in .cache/test beside the other bases. Benchmarks only: no
// test depends on it (it takes minutes to make and GiBs of disk).
import { createCipheriv, createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { bootBase } from './boot-base.ts';
import { cacheDir, type FixtureArch } from './fcos-base.ts';
import { needTool, sh } from './tools.ts';

/** The shape of the filler: 63 layers of 634 files each over the base's one. */
export const bigShape = {
  layers: 63,
  filesPerLayer: 634,
  /** One large file per layer (a firmware or a big library). */
  largeBytes: 6 * 1024 * 1024,
  /** Small files: 200 B * e^(U * spread), U uniform in [0,1): a mean near 36 KiB. */
  smallSpread: 7.16,
  /** Share of small files that are random bytes. */
  randomShare: 0.2,
} as const;

export interface BigBase {
  /** oci-archive: reference. */
  ref: string;
  /** Layers, the base's included. */
  layers: number;
  /** Files and bytes of the filler (the boot base under it adds a few files, about 70 MiB). */
  files: number;
  bytes: number;
}

/** A deterministic byte stream (AES-128-CTR of zeros under a fixed key): fast and seeded. */
function seeded(seed: string) {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  return {
    bytes: (n: number): Buffer => cipher.update(Buffer.alloc(n)),
    /** A uniform number in [0,1). */
    unit(): number {
      return cipher.update(Buffer.alloc(4)).readUInt32LE(0) / 2 ** 32;
    },
  };
}

/** A pool of text lines of made-up words, and a picker of text of a given length from it. */
function textSource(rng: ReturnType<typeof seeded>) {
  const words: string[] = [];
  const letters = 'etaoinshrdlcumwfgypbvkjxqz';
  for (let i = 0; i < 8192; i++) {
    const len = 2 + Math.floor(rng.unit() * 9);
    let w = '';
    // Skewed letter choice (the square favours the common letters first in the list).
    for (let j = 0; j < len; j++) w += letters[Math.floor(rng.unit() ** 2 * letters.length)];
    words.push(w);
  }
  const idx = new Uint16Array(rng.bytes(2 * 12 * (1 << 20)).buffer.slice(0));
  const lines: Buffer[] = [];
  let k = 0;
  for (let i = 0; i < 1 << 20; i++) {
    const n = 3 + (idx[k++]! % 10);
    const parts: string[] = [];
    for (let j = 0; j < n; j++) parts.push(words[idx[k++]! % words.length]!);
    lines.push(Buffer.from(`${parts.join(' ')}\n`));
  }
  return (size: number): Buffer => {
    const out: Buffer[] = [];
    let have = 0;
    const pick = new Uint32Array(rng.bytes(4 * (Math.ceil(size / 40) + 8)).buffer.slice(0));
    let p = 0;
    while (have < size) {
      const l = lines[pick[p++ % pick.length]! % lines.length]!;
      out.push(l);
      have += l.length;
    }
    return Buffer.concat(out, have).subarray(0, size);
  };
}

/** Writes layer `n`'s files under `dir` (a root-filesystem fragment); returns files and bytes. */
function writeLayer(dir: string, n: number, text: (size: number) => Buffer, rng: ReturnType<typeof seeded>) {
  const pkg = `pkg${String(n).padStart(2, '0')}`;
  const places = [`usr/lib64/${pkg}`, `usr/share/${pkg}`, `usr/lib/python3/${pkg}`, `usr/share/doc/${pkg}`];
  for (const p of [...places, 'usr/bin', `usr/lib/firmware/${pkg}`])
    mkdirSync(join(dir, p), { recursive: true });
  let bytes = 0;
  const half = bigShape.largeBytes / 2;
  writeFileSync(join(dir, `usr/lib/firmware/${pkg}/blob.bin`), Buffer.concat([rng.bytes(half), text(half)]));
  bytes += bigShape.largeBytes;
  for (let i = 0; i < bigShape.filesPerLayer - 1; i++) {
    const size = Math.floor(200 * Math.exp(rng.unit() * bigShape.smallSpread));
    const random = rng.unit() < bigShape.randomShare;
    const exec = i % 25 === 0;
    const file = exec
      ? join(dir, 'usr/bin', `${pkg}-tool${i}`)
      : join(dir, places[i % places.length]!, `f${i}.${random ? 'so' : 'txt'}`);
    writeFileSync(file, random ? rng.bytes(size) : text(size), { mode: exec ? 0o755 : 0o644 });
    bytes += size;
  }
  return { files: bigShape.filesPerLayer, bytes };
}

/** The FCOS-sized bootable base for `arch`, built once per input hash (a few minutes). */
export function bigBase(arch: FixtureArch): BigBase {
  needTool('buildah');
  const base = bootBase(arch).ref;
  const baseArchive = base.replace(/^oci-archive:/, '');
  // Inputs: this module's source without its whitespace (a reformat keeps the cache; function
  // sources would not, as the TypeScript loader's output differs between loaders) and the
  // boot base, named by its own input hash.
  const key = createHash('sha256')
    .update(readFileSync(new URL(import.meta.url), 'utf8').replace(/\s+/g, ''))
    .update(basename(baseArchive))
    .digest('hex')
    .slice(0, 12);
  const archive = join(cacheDir, `fcos-big-${arch}-${key}.ociarchive`);
  const record = `${archive}.json`;
  if (existsSync(archive) && existsSync(record))
    return { ref: `oci-archive:${archive}`, ...JSON.parse(readFileSync(record, 'utf8')) };
  const work = join(cacheDir, `fixture-big-${arch}-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    const rng = seeded(`rocknsm bench ${arch}`);
    const text = textSource(rng);
    let files = 0;
    let bytes = 0;
    const copies: string[] = [];
    for (let n = 1; n <= bigShape.layers; n++) {
      const l = writeLayer(join(work, 'ctx', `l${n}`), n, text, rng);
      files += l.files;
      bytes += l.bytes;
      copies.push(`COPY l${n}/ /`);
    }
    writeFileSync(join(work, 'ctx', 'Containerfile'), `FROM ${base}\n${copies.join('\n')}\n`);
    const g = [
      '--root',
      join(work, 'storage'),
      '--runroot',
      join(work, 'run'),
      '--storage-driver',
      'overlay',
    ];
    sh('buildah', [
      ...g,
      'build',
      '--layers',
      '--timestamp',
      '1761955200',
      '--platform',
      `linux/${arch === 'x86_64' ? 'amd64' : 'arm64'}`,
      '-f',
      join(work, 'ctx', 'Containerfile'),
      '-t',
      `fixture-big:${arch}`,
      join(work, 'ctx'),
    ]);
    rmSync(join(work, 'ctx'), { recursive: true, force: true });
    sh('buildah', [...g, 'push', `fixture-big:${arch}`, `oci-archive:${archive}.tmp`]);
    const info = { layers: bigShape.layers + 1, files, bytes };
    writeFileSync(record, `${JSON.stringify(info)}\n`);
    renameSync(`${archive}.tmp`, archive);
    return { ref: `oci-archive:${archive}`, ...info };
  } finally {
    sh('sh', ['-c', 'umount -R "$1"/storage/overlay/*/merged 2>/dev/null; true', 'sh', work]);
    rmSync(work, { recursive: true, force: true });
  }
}
