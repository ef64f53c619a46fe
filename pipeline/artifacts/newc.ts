// The cpio "newc" archive, written in process, byte for byte as `cpio --create --format=newc
// --owner=0:0 --reproducible` (exec/mkfs.ts cpioNewcArgs, GNU cpio 2.13) writes it for the same
// files. What it is for: the live rootfs without a second copy of its squashfs. mksquashfs writes
// the squashfs where the archive's first entry's data goes (`-offset`, exec/mkfs.ts), and the
// headers are written around it here, so the tree's squashfs is on disk once.
//
// The format, as the two ends have it:
// - Linux init/initramfs.c, what unpacks it at boot (also Documentation/driver-api/early-userspace/
//   buffer-format.rst): a 110-byte header, "070701" then 13 fields of 8 hex digits (ino, mode,
//   uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check;
//   parse_header reads the first 12); the name and its NUL, padded with NULs until header and
//   name end on a multiple of 4 (N_ALIGN); the data, padded to a multiple of 4 (do_header's
//   next_header); the entry named TRAILER!!! ends an archive (do_name), NULs after it are
//   skipped (do_reset).
// - GNU cpio 2.13 (git.savannah.gnu.org/cpio.git tag release_2_13, c63bd872), what this must
//   equal: src/copyout.c write_out_new_ascii_header :331-389 (digits in upper case: to_ascii's
//   codetab :274; check 0 for newc; a file size over 8 digits is an error), tape_pad_output
//   :79-93 (the padding to 4), process_copy_out (a directory's size 0 :741-745; a symbolic
//   link's data its target :786-827; a file with more links held back :702; the trailer with
//   every field 0 but nlink 1 :845-863; then NULs to the end of the 512-byte block :865-866,
//   tape_clear_rest_of_block :69-73, global.c:31 io_block_size); src/util.c stat_to_cpio
//   :1103-1148 (mode, nlink, mtime, size from lstat; uid and gid from --owner, CPIO_UID :1099)
//   and get_inode_and_dev :759-788 (--reproducible is main.c:201,462's --device-independent:
//   --renumber-inodes and --ignore-devno, so inode numbers from 0 in archive order, :729, a file
//   with more than one link numbered once per device and inode; devmajor and devminor 0).
import {
  closeSync,
  fstatSync,
  lstatSync,
  openSync,
  readlinkSync,
  readSync,
  type Stats,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

const MAGIC = '070701';
const HEADER = 110;
/** GNU cpio's default io_block_size: the archive is NULs to a whole block after the trailer. */
const BLOCK = 512;
const TRAILER = 'TRAILER!!!';
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

const align4 = (n: number) => (n + 3) & ~3;

/** One entry's header fields (uid and gid are always 0: --owner=0:0). */
export interface NewcEntry {
  name: string;
  ino: number;
  /** Permission bits and file type, as st_mode. */
  mode: number;
  nlink: number;
  /** Seconds since the epoch. */
  mtime: number;
  size: number;
}

function hex(n: number, field: string, name: string): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff)
    throw new Error(`${name}: ${field} ${n} does not fit a newc header's 8 hex digits`);
  return n.toString(16).toUpperCase().padStart(8, '0');
}

/** Where an entry's data starts, counted from its header: header, name, NUL, padding to 4. */
export const newcDataOffset = (name: string) => align4(HEADER + Buffer.byteLength(name) + 1);

/** An entry's header, name and the padding up to its data. */
export function newcHeader(e: NewcEntry): Buffer {
  const namesize = Buffer.byteLength(e.name) + 1;
  const fields = [e.ino, e.mode, 0, 0, e.nlink, e.mtime, e.size, 0, 0, 0, 0, namesize, 0];
  const names = ['ino', 'mode', 'uid', 'gid', 'nlink', 'mtime', 'file size'];
  const head = MAGIC + fields.map((n, i) => hex(n, names[i] ?? 'field', e.name)).join('');
  const out = Buffer.alloc(newcDataOffset(e.name));
  out.write(head, 0, 'latin1');
  out.write(e.name, HEADER, 'utf8');
  return out;
}

/** The entry GNU cpio ends an archive with. */
const trailer = (): NewcEntry => ({ name: TRAILER, ino: 0, mode: 0, nlink: 1, mtime: 0, size: 0 });

/** Inode numbers as --renumber-inodes gives them: in archive order from 0, once per linked file. */
function inodes() {
  let next = 0;
  const linked = new Map<string, number>();
  return (st: Stats): number => {
    if (st.nlink <= 1) return next++;
    const key = `${st.dev}:${st.ino}`;
    let n = linked.get(key);
    if (n === undefined) {
      n = next++;
      linked.set(key, n);
    }
    return n;
  };
}

export interface NewcOptions {
  /**
   * The name of a first entry whose data is in `out` already, from newcDataOffset(name) to its
   * end (mksquashfs -offset wrote it there). The entry stands for that data as a file of its own
   * would: the mode and mtime `out` has before its header is written, one link.
   */
  inPlace?: string;
}

/**
 * Writes `out`, a newc archive of `names` (relative to `dir`, in this order; regular files with
 * one link, directories, symbolic links), as cpio writes it with cpioNewcArgs. Returns its size.
 */
export function writeNewc(out: string, dir: string, names: string[], opts: NewcOptions = {}): number {
  const ino = inodes();
  const fd = openSync(out, opts.inPlace === undefined ? 'w' : 'r+');
  try {
    let pos = 0;
    const put = (buf: Buffer) => {
      let done = 0;
      while (done < buf.length) done += writeSync(fd, buf, done, buf.length - done, pos + done);
      pos += buf.length;
    };
    const pad = () => put(Buffer.alloc(align4(pos) - pos));
    if (opts.inPlace !== undefined) {
      const st = fstatSync(fd);
      const at = newcDataOffset(opts.inPlace);
      if (st.size < at)
        throw new Error(`${out}: ${st.size} bytes, not the data of ${opts.inPlace} at byte ${at}`);
      put(
        newcHeader({
          name: opts.inPlace,
          ino: ino(st),
          mode: (st.mode & 0o7777) | S_IFREG,
          nlink: 1,
          mtime: Math.floor(st.mtimeMs / 1000),
          size: st.size - at,
        }),
      );
      pos = st.size;
      pad();
    }
    for (const name of names) {
      const path = join(dir, name);
      const st = lstatSync(path);
      const type = st.mode & S_IFMT;
      const entry = (size: number): NewcEntry => ({
        name,
        ino: ino(st),
        mode: st.mode & (S_IFMT | 0o7777),
        nlink: st.nlink,
        mtime: Math.floor(st.mtimeMs / 1000),
        size,
      });
      if (type === S_IFDIR) put(newcHeader(entry(0)));
      else if (type === S_IFLNK) {
        const target = Buffer.from(readlinkSync(path, { encoding: 'buffer' }));
        put(newcHeader(entry(target.length)));
        put(target);
        pad();
      } else if (type === S_IFREG) {
        // cpio holds back all but the last of a file's links (copyout.c add_link_defer): not done here.
        if (st.nlink > 1) throw new Error(`${path}: ${st.nlink} links; only files with one link are written`);
        put(newcHeader(entry(st.size)));
        copyInto(fd, path, st.size, pos);
        pos += st.size;
        pad();
      } else throw new Error(`${path}: neither a regular file, a directory nor a symbolic link`);
    }
    put(newcHeader(trailer()));
    put(Buffer.alloc((BLOCK - (pos % BLOCK)) % BLOCK));
    return pos;
  } finally {
    closeSync(fd);
  }
}

/** Copies `size` bytes of `src` into `fd` at `at`; the file must still have them. */
function copyInto(fd: number, src: string, size: number, at: number): void {
  const inFd = openSync(src, 'r');
  try {
    const buf = Buffer.alloc(Math.min(size, 1 << 20));
    let done = 0;
    while (done < size) {
      const n = readSync(inFd, buf, 0, Math.min(buf.length, size - done), done);
      if (n === 0) throw new Error(`${src} became shorter than ${size} bytes while it was archived`);
      let w = 0;
      while (w < n) w += writeSync(fd, buf, w, n - w, at + done + w);
      done += n;
    }
  } finally {
    closeSync(inFd);
  }
}
