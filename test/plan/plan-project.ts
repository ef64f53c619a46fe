// Shared by the planner tests: plans a stream of a project directory the way the build glue
// does (overlays indexed, templates read, the Containerfile template), with given base facts.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Arch } from '../../pipeline/config/index.ts';
import { loadProject, projectPaths, resolveStream } from '../../pipeline/config/index.ts';
import { indexOverlay } from '../../pipeline/config/overlay-index.ts';
import { type BaseFacts, type PlanInput, planBuild } from '../../pipeline/plan/build-plan.ts';

/** Facts of a base with nothing to regenerate: no dracut, no kernel, no package tool. */
export const plainBase: BaseFacts = {
  ref: 'docker://quay.io/fedora/fedora-coreos:stable',
  name: 'quay.io/fedora/fedora-coreos',
  digest: `sha256:${'a'.repeat(64)}`,
  created: '2026-11-01T00:00:00Z',
  labels: {},
  osRelease: 'NAME="Fedora Linux"\nID=fedora\nVERSION_ID=41\n',
  etcOsReleaseIsFile: false,
  kernels: [],
  has: { dracut: false, bootc: true, dnf: false, rpmOstree: true },
  varEntries: [],
};

/** `stream` of the project in `dir`, planned for `arches` (default x86_64 on plainBase). */
export function planProject(
  dir: string,
  stream: string,
  o: Partial<Omit<PlanInput, 'config' | 'overlays' | 'templates' | 'containerfileTemplate'>> = {},
) {
  const paths = projectPaths(dir);
  const config = resolveStream(loadProject(paths), stream, dir);
  const overlays = config.image.overlays.map((n) => indexOverlay(n, join(paths.overlays, n)));
  const templates: Record<string, string> = {};
  for (const ov of overlays)
    for (const e of ov.entries)
      if (e.type === 'file' && e.path.endsWith('.in'))
        templates[`${ov.name}/${e.path}`] = readFileSync(join(ov.dir, e.path), 'utf8');
  const arches: Arch[] = o.arches ?? ['x86_64'];
  return planBuild({
    version: '41.20261122.3.0',
    revision: '0'.repeat(40),
    timestamp: 1761955200,
    bases: Object.fromEntries(arches.map((a) => [a, plainBase])),
    ...o,
    arches,
    config,
    overlays,
    templates,
    containerfileTemplate: readFileSync(join(paths.containerfiles, 'rocknsm.Containerfile'), 'utf8'),
  });
}
