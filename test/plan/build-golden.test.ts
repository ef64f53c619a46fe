// The pure build planner against reviewed golden files: the rendered Containerfile and every
// file the build generates (initramfs layer, generated units and quadlets, rendered overlay
// templates, the version stamp), per arch, for the stable stream with fixed base facts and test
// pins for every service and agent image (one digest per reference, sha256 of its name), so the
// quadlets run by digest and bound-images.d links them; `symlinks` lists every link the build adds.
// Regenerate on purpose with UPDATE_GOLDEN=1 and review the diff.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { imageIgnition } from '../../pipeline/commands/ignition-glue.ts';
import { loadProject, projectPaths, resolveStream } from '../../pipeline/config/index.ts';
import type { BaseFacts } from '../../pipeline/plan/build-plan.ts';
import type { ImageLock } from '../../pipeline/plan/image-lock.ts';
import { KVER, repoRoot } from '../world/fcos-base.ts';
import { planProject } from './plan-project.ts';

const goldenDir = join(repoRoot, 'test/golden/build');
const update = process.env.UPDATE_GOLDEN === '1';

function baseFacts(arch: 'x86_64' | 'aarch64'): BaseFacts {
  return {
    ref: 'docker://quay.io/fedora/fedora-coreos:stable',
    name: 'quay.io/fedora/fedora-coreos',
    digest: `sha256:${(arch === 'x86_64' ? 'a' : 'b').repeat(64)}`,
    indexDigest: `sha256:${'c'.repeat(64)}`,
    created: '2026-11-01T00:00:00Z',
    labels: { 'containers.bootc': '1', 'ostree.bootable': '1' },
    osRelease:
      'NAME="Fedora Linux"\nVERSION="41.20261101.3.0 (CoreOS)"\nID=fedora\nVERSION_ID=41\nVARIANT="CoreOS"\nVARIANT_ID=coreos\nPRETTY_NAME="Fedora CoreOS 41.20261101.3.0"\n',
    etcOsReleaseIsFile: false,
    kernels: [KVER[arch]],
    has: { dracut: true, bootc: true, dnf: false, rpmOstree: true },
    varEntries: ['/var/lib', '/var/log', '/var/spool', '/var/tmp'],
  };
}

/** Test pins (not registry digests): every service and agent reference -> sha256 of its name. */
export function testPins(refs: string[]): ImageLock {
  const digest = (ref: string) => `sha256:${createHash('sha256').update(ref).digest('hex')}`;
  return { images: Object.fromEntries(refs.map((r) => [r, { digest: digest(r), resolved: '2026-11-22' }])) };
}

function plan(version = '41.20261122.3.0', revision = '0'.repeat(40)) {
  const config = resolveStream(loadProject(projectPaths(repoRoot)), 'stable', repoRoot);
  return planProject(repoRoot, 'stable', {
    arches: ['x86_64', 'aarch64'],
    bases: { x86_64: baseFacts('x86_64'), aarch64: baseFacts('aarch64') },
    version,
    revision,
    ...imageIgnition(repoRoot),
    pins: testPins([...config.services, ...config.agents].map((s) => s.image)),
  });
}

/** Every golden file of an arch: Containerfile plus each generated (not copied) context file. */
function rendered(a: ReturnType<typeof plan>['arches'][number]): Map<string, string> {
  const files = new Map<string, string>([['Containerfile', a.containerfile]]);
  for (const f of a.context) if (f.type === 'file' && f.content !== undefined) files.set(f.path, f.content);
  const links = a.context.filter((f) => f.type === 'symlink').map((f) => `${f.path} -> ${f.target}\n`);
  files.set('symlinks', links.sort().join(''));
  return files;
}

function listGolden(dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listGolden(join(dir, e.name), `${prefix}${e.name}/`) : [`${prefix}${e.name}`],
  );
}

const built = plan();
for (const a of built.arches) {
  const files = rendered(a);
  test(`${a.arch}: the Containerfile and generated files match test/golden/build/${a.arch}`, () => {
    const dir = join(goldenDir, a.arch);
    if (update) {
      rmSync(dir, { recursive: true, force: true });
      for (const [path, content] of files) {
        mkdirSync(dirname(join(dir, path)), { recursive: true });
        writeFileSync(join(dir, path), content);
      }
    }
    assert.equal(listGolden(dir).sort(), [...files.keys()].sort(), 'same set of files');
    for (const [path, content] of files)
      assert.fixture(content, readFileSync(join(dir, path), 'utf8'), `${a.arch}/${path}`);
  });
}

test('the input hash ignores the version and revision, and follows the content', () => {
  const again = plan('41.20261123.3.0', 'f'.repeat(40));
  assert.equal(
    again.arches.map((a) => a.inputHash),
    built.arches.map((a) => a.inputHash),
  );
  assert.is.not(again.arches[0]!.containerfile, built.arches[0]!.containerfile, 'labels carry the version');
  assert.is.not(built.arches[0]!.inputHash, built.arches[1]!.inputHash);
});

test.run();
