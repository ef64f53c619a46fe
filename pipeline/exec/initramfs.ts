// What an initramfs holds: the file names of every newc cpio archive in it, the uncompressed
// ones (dracut's early microcode archive) and the compressed main one, decompressed with the
// matching command-line tool. The build checks the initramfs the image boots with, because dracut
// leaves a module out with only a log line when the module's dependencies are missing.
import {
  closeSync,
  createReadStream,
  mkdtempSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Runner } from './run.ts';
import { requireTool } from './tools.ts';

const CPIO_MAGIC = ['070701', '070702'];
const HEADER = 110;

/** Compressed streams the kernel can unpack, by leading bytes, and the tool that reads them. */
const COMPRESSORS: { magic: number[]; tool: string }[] = [
  { magic: [0x28, 0xb5, 0x2f, 0xfd], tool: 'zstd' },
  { magic: [0x1f, 0x8b], tool: 'gzip' },
  { magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], tool: 'xz' },
  { magic: [0x02, 0x21, 0x4c, 0x18], tool: 'lz4' },
];

const align4 = (n: number) => (n + 3) & ~3;

/**
 * Reads newc cpio archives from `buf` starting at `pos` (zero padding between them skipped),
 * adding each entry's name (without a leading `./` or `/`) to `names`. Returns where the cpio
 * data ends: the start of a compressed stream, or the buffer's end.
 */
export function readCpio(buf: Buffer, names: Set<string>, pos = 0): number {
  for (;;) {
    while (pos < buf.length && buf[pos] === 0) pos++;
    if (pos + HEADER > buf.length || !CPIO_MAGIC.includes(buf.toString('latin1', pos, pos + 6))) return pos;
    const field = (i: number) =>
      Number.parseInt(buf.toString('latin1', pos + 6 + i * 8, pos + 14 + i * 8), 16);
    const size = field(6);
    const nameSize = field(11);
    if (Number.isNaN(size) || Number.isNaN(nameSize) || nameSize < 1)
      throw new Error(`corrupt cpio header at byte ${pos}`);
    const name = buf.toString('utf8', pos + HEADER, pos + HEADER + nameSize - 1);
    pos = align4(pos + HEADER + nameSize);
    pos = align4(pos + size);
    if (name === 'TRAILER!!!') continue;
    names.add(name.replace(/^\.?\//, ''));
  }
}

/** The names of every file, directory and link in an initramfs image. */
export async function initramfsNames(run: Runner, file: string, tag?: string): Promise<Set<string>> {
  const buf = readFileSync(file);
  const names = new Set<string>();
  const end = readCpio(buf, names);
  if (end < buf.length) {
    const c = COMPRESSORS.find((x) => x.magic.every((b, i) => buf[end + i] === b));
    if (!c)
      throw new Error(`${file}: byte ${end} starts neither a cpio archive nor a known compressed stream`);
    requireTool(c.tool);
    const dir = mkdtempSync(join(tmpdir(), 'rock-initramfs-'));
    try {
      const out = join(dir, 'main.cpio');
      await run('sh', ['-c', `tail -c +${end + 1} "$1" | ${c.tool} -dc > "$2"`, 'sh', file, out], { tag });
      readCpio(readFileSync(out), names);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return names;
}

/**
 * Concatenates initrd segments. Each one after the first must start on a 4-byte boundary: the
 * kernel's initramfs unpacker skips zero padding between segments but reads a cpio header only at
 * an aligned offset, so an unaligned compressed initramfs would hide the appended rootfs.
 */
export async function concatInitrds(from: string[], to: string): Promise<void> {
  const tmp = `${to}.tmp`;
  const fd = openSync(tmp, 'w');
  let written = 0;
  try {
    for (const f of from) {
      if (written % 4) {
        const pad = Buffer.alloc(4 - (written % 4));
        writeSync(fd, pad);
        written += pad.length;
      }
      for await (const chunk of createReadStream(f, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
        writeSync(fd, chunk);
        written += chunk.length;
      }
    }
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, to);
}
