// The CLI as tests run it: this checkout's bin with CI=true (plain log lines, no status line),
// and the one build most tests start from.
import { join } from 'node:path';
import { fcosBase, repoRoot } from './fcos-base.ts';
import { shResult } from './tools.ts';

/** Runs `rock-image --project PROJECT ARGS`; its exit code and output. */
export const projectCli = (project: string) => (args: string[]) =>
  shResult(process.execPath, [join(repoRoot, 'bin/rock-image.js'), '--project', project, ...args], {
    env: { CI: 'true' },
  });

/**
 * `build` of the stable stream for x86_64 on the test world's plain FCOS-shaped base, into `out`,
 * with its own container storage in `work/storage`; `extra` is appended.
 */
export const stableBuildArgs = (work: string, out: string, extra: string[] = []): string[] => [
  'build',
  '--stream',
  'stable',
  '--arch',
  'x86_64',
  '--base',
  `x86_64=${fcosBase('x86_64', 'plain')}`,
  '--output',
  out,
  '--storage',
  join(work, 'storage'),
  ...extra,
];
