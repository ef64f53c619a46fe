// The sensor test world's project (test/world/sensor-project.ts) requires pins and pins its own
// registry images through manifests/image-pins.json, read the way a build reads it: its plan
// runs every service and agent quadlet by the pushed index digest and binds each of them. (The
// sensor suites build and boot it; this checks the project without QEMU.)
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readImagePins } from '../../pipeline/commands/build-glue.ts';
import { loadProject, projectPaths, resolveStream } from '../../pipeline/config/index.ts';
import { type BaseFacts, planBuild } from '../../pipeline/plan/build-plan.ts';
import { quadletImage, repositoryOf } from '../../pipeline/plan/image-pins.ts';
import { indexOverlay } from '../../pipeline/plan/overlay-index.ts';
import { AGENTS, SERVICES, sensorProject, serviceImage } from '../world/sensor-project.ts';

const scratch = mkdtempSync(join(tmpdir(), 'rock-sensor-pins-'));
test.after(() => rmSync(scratch, { recursive: true, force: true }));
const DIGEST = `sha256:${'5'.repeat(64)}`;

const base: BaseFacts = {
  ref: 'oci-archive:/nowhere/sensor-base.ociarchive',
  name: 'localhost/sensor-base',
  digest: `sha256:${'a'.repeat(64)}`,
  created: '2026-11-01T00:00:00Z',
  labels: {},
  osRelease: 'NAME="Fedora Linux"\nID=fedora\nVERSION_ID=41\n',
  etcOsReleaseIsFile: false,
  kernels: [],
  has: { dracut: false, bootc: false, dnf: false, rpmOstree: false },
  varEntries: [],
};

test('the test project requires pins, and its pins cover every image: all quadlets by digest, all bound', () => {
  const dir = sensorProject(join(scratch, 'project'), 'release-1', DIGEST);
  const paths = projectPaths(dir);
  const config = resolveStream(loadProject(paths), 'stable', dir);
  assert.ok(config.stream.requirePins.required);
  const overlays = config.image.overlays.map((o) => indexOverlay(o, join(paths.overlays, o)));
  const templates: Record<string, string> = {};
  for (const o of overlays)
    for (const e of o.entries)
      if (e.type === 'file' && e.path.endsWith('.in'))
        templates[`${o.name}/${e.path}`] = readFileSync(join(o.dir, e.path), 'utf8');
  const plan = planBuild({
    config,
    arches: ['x86_64'],
    overlays,
    templates,
    containerfileTemplate: readFileSync(join(paths.containerfiles, 'rocknsm.Containerfile'), 'utf8'),
    bases: { x86_64: base },
    version: '13.20261130.3.0',
    revision: '0'.repeat(40),
    timestamp: 1761955200,
    pins: readImagePins(dir),
  });
  const names = [...SERVICES.map((s) => `service/${s}`), ...AGENTS.map((a) => `agent/${a}`)];
  assert.equal(Object.keys(plan.images).sort(), names.sort());
  for (const [key, p] of Object.entries(plan.images)) {
    const name = key.split('/')[1]!;
    assert.equal(p, {
      ref: serviceImage(name),
      image: `${repositoryOf(serviceImage(name))}@${DIGEST}`,
      digest: DIGEST,
    });
  }
  const ctx = plan.arches[0]!.context;
  const quadlets = ctx.filter((f) => /\/usr\/share\/containers\/systemd\/[^/]+\.container$/.test(f.path));
  assert.is(quadlets.length, names.length);
  for (const q of quadlets) assert.ok(quadletImage(q.content!)!.endsWith(`@${DIGEST}`), q.path);
  const links = ctx.filter((f) => f.path.startsWith('generated/usr/lib/bootc/bound-images.d/'));
  assert.is(links.length, names.length);
});

test.run();
