// Artifact figures (issue 6): per-stage times of the native backend for both arches (built
// concurrently, as `rock-image artifacts` does), the whole run's wall time, and xz versus zstd
// on the x86_64 metal image (time and size). Real build of the bootable fixture (Debian kernel),
// real sgdisk/mkfs/ostree/GRUB/qemu-img/xz/zstd.
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { compressArtifact, makeArtifacts } from '../../pipeline/artifacts/index.ts';
import { artifactRequest } from '../../pipeline/commands/artifacts.ts';
import type { Context } from '../../pipeline/commands/types.ts';
import { decompressFile } from '../../pipeline/exec/compress.ts';
import { createRunner } from '../../pipeline/exec/run.ts';
import { createLogger } from '../../pipeline/log.ts';
import { bootBase } from '../world/boot-base.ts';
import { cacheDir, repoRoot } from '../world/fcos-base.ts';
import { shResult } from '../world/tools.ts';

const MiB = 1024 * 1024;

export async function bench(): Promise<void> {
  const work = join(cacheDir, `bench-artifacts-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  const out = join(work, 'out');
  const bases = (['x86_64', 'aarch64'] as const).flatMap((a) => ['--base', `${a}=${bootBase(a).ref}`]);
  const b = shResult(
    process.execPath,
    [
      join(repoRoot, 'bin/rock-image.js'),
      'build',
      '--stream',
      'stable',
      ...bases,
      '--output',
      out,
      '--storage',
      join(work, 'storage'),
    ],
    { env: { CI: 'true' } },
  );
  if (b.code !== 0) throw new Error(`build failed:\n${b.stderr}`);
  const log = createLogger({ mode: 'plain', out: { write: () => true } });
  const ctx: Context = {
    root: repoRoot,
    cwd: repoRoot,
    env: process.env,
    now: Date.now,
    log,
    run: createRunner(log),
    stdout: { write: () => true },
    cores: 2,
  };
  try {
    const req = artifactRequest(ctx, { build: out, backend: 'native', compression: 'zstd' });
    const started = process.hrtime.bigint();
    const results = await makeArtifacts(ctx, req);
    const wall = Number(process.hrtime.bigint() - started) / 1e9;
    console.log(
      `native backend, ${req.platforms.join('+')}, both arches concurrently, zstd: ${wall.toFixed(1)} s wall\n`,
    );
    const stages = [...new Set(results.flatMap((r) => Object.keys(r.stages)))];
    console.log(`| stage | ${results.map((r) => r.arch).join(' | ')} |`);
    console.log(`|---|${results.map(() => '---').join('|')}|`);
    for (const s of stages)
      console.log(
        `| ${s} | ${results.map((r) => (r.stages[s] === undefined ? '-' : `${(r.stages[s]! / 1000).toFixed(1)} s`)).join(' | ')} |`,
      );

    // xz vs zstd on the x86_64 metal image: back to raw, then each compressor on the same input.
    const dir = join(out, 'builds', req.version, 'x86_64');
    const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8'));
    const metal = join(dir, meta.images.metal.path);
    const raw = join(work, 'metal.raw');
    await decompressFile(ctx.run, 'zstd', metal, raw);
    console.log('\n| x86_64 metal image | time | size |');
    console.log('|---|---|---|');
    for (const kind of ['zstd', 'xz'] as const) {
      const r = await compressArtifact(ctx.run, raw, kind);
      console.log(
        `| ${kind} -T0 (${(r.inputSize / MiB).toFixed(0)} MiB raw) | ${r.seconds.toFixed(1)} s | ${(r.size / MiB).toFixed(1)} MiB |`,
      );
      rmSync(r.path, { force: true });
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
