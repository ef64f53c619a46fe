// pipeline/artifacts/newc.ts against GNU cpio itself: the same files archived by the real
// `cpio` with the flags the pipeline used (exec/mkfs.ts cpioNewcArgs) and by writeNewc must be
// the same bytes, for the live rootfs's entries (a squashfs from the real mksquashfs, etc and
// its stamp) and for the odd cases (a symbolic link, names that need padding, a file whose data
// ends on a block, an empty file).
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { newcDataOffset, newcHeader, writeNewc } from '../../pipeline/artifacts/newc.ts';
import { cpioNewcArgs, mksquashfsArgs } from '../../pipeline/exec/mkfs.ts';
import { needTool, sh } from '../world/tools.ts';

const dir = mkdtempSync(join(tmpdir(), 'rock-newc-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** What the real cpio writes for `names` under `tree`, given on its standard input as the plan gave them. */
function realCpio(tree: string, names: string[], out: string): Buffer {
  needTool('cpio');
  sh('cpio', cpioNewcArgs(out), { cwd: tree, input: names.map((n) => `${n}\n`).join('') });
  return readFileSync(out);
}

test('a header: magic, 13 fields of 8 upper-case hex digits, the name, NULs to a multiple of 4', () => {
  const h = newcHeader({ name: 'etc', ino: 1, mode: 0o40755, nlink: 2, mtime: 0x6b0ecd6a, size: 0 });
  assert.is(h.length, 116);
  assert.is(
    h.toString('latin1'),
    '070701' +
      ['00000001', '000041ED', '00000000', '00000000', '00000002', '6B0ECD6A', '00000000']
        .concat(['00000000', '00000000', '00000000', '00000000', '00000004', '00000000'])
        .join('') +
      'etc\0\0\0',
  );
  assert.is(newcDataOffset('root.squashfs'), 124);
  assert.throws(
    () => newcHeader({ name: 'big', ino: 0, mode: 0o100644, nlink: 1, mtime: 0, size: 2 ** 32 }),
    /file size 4294967296 does not fit/,
  );
});

test('the live rootfs entries: the same bytes as cpio, the squashfs written in place by mksquashfs', () => {
  needTool('mksquashfs');
  const src = join(dir, 'sysroot');
  mkdirSync(join(src, 'ostree/repo'), { recursive: true });
  writeFileSync(join(src, 'ostree/repo/config'), '[core]\nrepo_version=1\n');
  writeFileSync(join(src, 'ostree/data'), Buffer.alloc(300_000, 7));
  mkdirSync(join(src, 'boot'));
  writeFileSync(join(src, 'boot/left-out'), 'x');
  const live = join(dir, 'live');
  mkdirSync(join(live, 'etc'), { recursive: true });
  writeFileSync(join(live, 'etc/coreos-live-rootfs'), '41.20261122.3.0\n');

  // Today's way: root.squashfs a file of its own, then cpio.
  const env = { SOURCE_DATE_EPOCH: '0' };
  sh('mksquashfs', mksquashfsArgs(src, join(live, 'root.squashfs'), ['boot']), { env });
  // The new way: mksquashfs into the archive at the entry's data offset, headers around it.
  const archive = join(dir, 'live-rootfs.img');
  const at = newcDataOffset('root.squashfs');
  sh('mksquashfs', mksquashfsArgs(src, archive, ['boot'], at), { env });
  // The two squashfs files alike as cpio sees them: mode and mtime (a second apart at most here).
  const when = new Date('2026-11-22T00:00:00Z');
  utimesSync(archive, when, when);
  utimesSync(join(live, 'root.squashfs'), when, when);
  assert.is(statSync(archive).mode, statSync(join(live, 'root.squashfs')).mode);

  const names = ['etc', 'etc/coreos-live-rootfs'];
  const ref = realCpio(live, ['root.squashfs', ...names], join(dir, 'ref.cpio'));
  const size = writeNewc(archive, live, names, { inPlace: 'root.squashfs' });
  const ours = readFileSync(archive);
  assert.is(size, ours.length);
  assert.is(ours.length % 512, 0);
  assert.ok(ours.equals(ref), `${ours.length} bytes against cpio's ${ref.length}`);
  // And what cpio reads back from it.
  assert.equal(sh('sh', ['-c', 'cpio -it --quiet < "$1"', 'sh', archive]).trim().split('\n'), [
    'root.squashfs',
    'etc',
    'etc/coreos-live-rootfs',
  ]);
});

test('odd cases: symbolic link, padded names, data on a block boundary, an empty file, modes', () => {
  const tree = join(dir, 'odd');
  mkdirSync(join(tree, 'a/bb'), { recursive: true });
  writeFileSync(join(tree, 'a/bb/ccc'), Buffer.alloc(512, 1));
  writeFileSync(join(tree, 'a/empty'), '');
  writeFileSync(join(tree, 'a/x'), 'odd length!');
  chmodSync(join(tree, 'a/x'), 0o4750);
  symlinkSync('../a/bb/ccc', join(tree, 'a/link'));
  const names = ['a', 'a/bb', 'a/bb/ccc', 'a/empty', 'a/x', 'a/link'];
  const ref = realCpio(tree, names, join(dir, 'odd-ref.cpio'));
  const out = join(dir, 'odd.cpio');
  writeNewc(out, tree, names);
  assert.ok(readFileSync(out).equals(ref), 'the same bytes as cpio');
});

test('refused: a file with more than one link (cpio holds such files back), a missing in-place entry', () => {
  const tree = join(dir, 'linked');
  mkdirSync(tree);
  writeFileSync(join(tree, 'one'), 'x');
  sh('ln', [join(tree, 'one'), join(tree, 'two')]);
  assert.throws(() => writeNewc(join(dir, 'linked.cpio'), tree, ['one']), /2 links/);
  const short = join(dir, 'short.img');
  writeFileSync(short, Buffer.alloc(10));
  assert.throws(
    () => writeNewc(short, tree, [], { inPlace: 'root.squashfs' }),
    /not the data of root.squashfs/,
  );
});

test.run();
