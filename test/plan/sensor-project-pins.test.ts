// The sensor test world's project (test/world/sensor-project.ts) requires pins and pins its own
// registry images through manifests/image-pins.json, read the way a build reads it: its plan
// runs every service and agent quadlet by the pushed index digest and binds each of them. (The
// sensor suites build and boot it; this checks the project without QEMU.)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readImagePins } from '../../pipeline/commands/build-glue.ts';
import { loadProject, projectPaths, resolveStream } from '../../pipeline/config/index.ts';
import { quadletImage, repositoryOf } from '../../pipeline/plan/image-pins.ts';
import { AGENTS, SERVICES, sensorProject, serviceImage } from '../world/sensor-project.ts';
import { planProject } from './plan-project.ts';

const scratch = mkdtempSync(join(tmpdir(), 'rock-sensor-pins-'));
test.after(() => rmSync(scratch, { recursive: true, force: true }));
const DIGEST = `sha256:${'5'.repeat(64)}`;

test('the test project requires pins, and its pins cover every image: all quadlets by digest, all bound', () => {
  const dir = sensorProject(join(scratch, 'project'), 'release-1', DIGEST);
  const config = resolveStream(loadProject(projectPaths(dir)), 'stable', dir);
  assert.ok(config.stream.requirePins.required);
  const plan = planProject(dir, 'stable', { pins: readImagePins(dir), version: '13.20261130.3.0' });
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
