// pipeline/exec/initramfs.ts and the build's initramfs check (lint/image.ts lintInitramfs):
// initramfs images made here the way dracut makes them (an uncompressed early cpio, then the
// main cpio compressed; GNU cpio and the real compressors), read back name by name.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { initramfsNames, readCpio } from '../../pipeline/exec/initramfs.ts';
import { createRunner } from '../../pipeline/exec/run.ts';
import { lintInitramfs } from '../../pipeline/lint/image.ts';
import { createLogger } from '../../pipeline/log.ts';
import type { ArchPlan } from '../../pipeline/plan/build-plan.ts';
import { needTool, sh } from '../world/tools.ts';

const run = createRunner(createLogger({ mode: 'plain', out: { write: () => true } }));
const dir = mkdtempSync(join(tmpdir(), 'rock-initramfs-'));

/** A newc cpio of `files` (paths relative to a fresh tree). */
function cpio(name: string, files: string[]): string {
  needTool('cpio');
  const tree = join(dir, `${name}.tree`);
  for (const f of files) {
    mkdirSync(join(tree, f, '..'), { recursive: true });
    writeFileSync(join(tree, f), `${f}\n`);
  }
  const out = join(dir, `${name}.cpio`);
  sh('sh', ['-c', 'cd "$1" && find . | LC_ALL=C sort | cpio -o -H newc --quiet > "$2"', 'sh', tree, out]);
  return out;
}

const main = ['usr/lib/ostree/ostree-prepare-root', 'usr/lib/ostree/prepare-root.conf', 'init'];

test.after(() => rmSync(dir, { recursive: true, force: true }));

for (const [tool, flags] of [
  ['zstd', ['-3', '-q', '-c']],
  ['gzip', ['-n', '-c']],
  ['xz', ['-c', '--check=crc32']],
] as const)
  test(`early cpio + ${tool}-compressed main cpio: every name of both`, async () => {
    needTool(tool);
    const early = cpio(`early-${tool}`, ['kernel/x86/microcode/GenuineIntel.bin']);
    const body = cpio(`main-${tool}`, main);
    const img = join(dir, `${tool}.img`);
    sh('sh', ['-c', `cat "$1" > "$3" && ${tool} ${flags.join(' ')} "$2" >> "$3"`, 'sh', early, body, img]);
    const names = await initramfsNames(run, img);
    for (const n of [...main, 'kernel/x86/microcode/GenuineIntel.bin', 'usr/lib/ostree', 'usr'])
      assert.ok(names.has(n), `${n} in ${[...names].join(' ')}`);
    assert.not.ok(names.has('TRAILER!!!'));
  });

test('an uncompressed initramfs is read as it is; garbage is refused with its byte offset', async () => {
  const img = cpio('plain', main);
  assert.ok((await initramfsNames(run, img)).has('init'));
  const bad = join(dir, 'bad.img');
  writeFileSync(bad, Buffer.concat([Buffer.alloc(16), Buffer.from('not an archive')]));
  try {
    await initramfsNames(run, bad);
    assert.unreachable('garbage accepted');
  } catch (e) {
    assert.match((e as Error).message, /byte 16 starts neither a cpio archive nor a known compressed stream/);
  }
  assert.throws(
    () => readCpio(Buffer.from(`070701${'z'.repeat(104)}`), new Set()),
    /corrupt cpio header at byte 0/,
  );
});

const plan = (added: string[]) => ({ addedPaths: added }) as unknown as ArchPlan;
const module = '/usr/lib/dracut/modules.d/50rocknsm-ignition-base';

test('lintInitramfs: ostree-prepare-root, prepare-root.conf and the base config must be in it', () => {
  const full = new Set([...main, 'usr/lib/ignition/base.d/30-rocknsm-storage.ign']);
  const withBase = plan([`${module}/30-rocknsm-storage.ign`, `${module}/module-setup.sh`]);
  assert.equal(lintInitramfs(full, withBase, '/i.img'), []);
  const noOstree = lintInitramfs(
    new Set(['init', 'usr/lib/ignition/base.d/30-rocknsm-storage.ign']),
    withBase,
    '/i.img',
  );
  assert.equal(
    noOstree.map((f) => f.check),
    ['initramfs'],
  );
  assert.match(noOstree[0]!.message, /dracut left out ostree's module/);
  const noConf = lintInitramfs(
    new Set(['usr/lib/ostree/ostree-prepare-root', 'usr/lib/ignition/base.d/30-rocknsm-storage.ign']),
    withBase,
    '/i.img',
  );
  assert.match(noConf[0]!.message, /no usr\/lib\/ostree\/prepare-root\.conf/);
  const noBase = lintInitramfs(new Set(main), withBase, '/i.img');
  assert.equal(noBase.length, 1);
  assert.match(
    noBase[0]!.message,
    /dracut left out 50rocknsm-ignition-base .* sensors would get no data partitions/,
  );
  // An image without a base config does not need one in its initramfs.
  assert.equal(lintInitramfs(new Set(main), plan([]), '/i.img'), []);
});

test.run();
