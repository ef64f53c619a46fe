// Child process of backgroundBuilds() (world.ts): `build()` of each
// VERSION:RELEASE:ARTIFACTS:CASE (ARTIFACTS `artifacts` or `no`; CASE a `rock-image test` case
// to boot once built, or empty), in order, into the parent's work directory
// (ROCK_TEST_SENSOR_WORK, inherited). Usage: build-child.ts ARCH SPEC...
import { writeFileSync } from 'node:fs';
import { type SensorArch, TEST_REGISTRY_PORT } from '../world/sensor-base.ts';
import { bootResultFile, build, cli, serviceDigest } from './world.ts';

/** The parent starts the service registry the guests pull from; wait for it (a minute at most). */
async function registryUp(): Promise<void> {
  for (let i = 0; i < 60; i++) {
    const ok = await fetch(`http://127.0.0.1:${TEST_REGISTRY_PORT}/v2/`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(`the service registry on port ${TEST_REGISTRY_PORT} is not up`);
}

/**
 * The project pins the service images to the digest the parent's push reports (world.ts
 * serviceRegistry()); it may still be pushing: wait for it (half an hour at most).
 */
async function servicesPushed(): Promise<void> {
  for (let i = 0; i < 1800; i++) {
    try {
      serviceDigest();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  serviceDigest();
}

const [arch, ...specs] = process.argv.slice(2);
if (!arch || specs.length === 0)
  throw new Error('usage: build-child.ts ARCH VERSION:RELEASE:ARTIFACTS:CASE...');
await servicesPushed();
for (const [i, spec] of specs.entries()) {
  const [version, release, artifacts, bootCase] = spec.split(':');
  const b = build(arch as SensorArch, version!, release!, artifacts === 'artifacts');
  console.log(`built ${b.arch} ${b.version} in ${b.seconds} s (base ${b.baseSeconds} s): ${b.dir}`);
  if (bootCase) {
    await registryUp();
    const t = Date.now();
    // Generous: it boots beside the other suites' VMs on two cores.
    const r = cli(['test', '--build', b.out, '--case', bootCase, '--timeout', '1500']);
    const seconds = (Date.now() - t) / 1000;
    writeFileSync(bootResultFile(b, bootCase), JSON.stringify({ code: r.code, stderr: r.stderr, seconds }));
    console.log(`rock-image test --case ${bootCase}: exit ${r.code} in ${seconds} s`);
  }
  console.log(`spec-done ${i}`);
}
