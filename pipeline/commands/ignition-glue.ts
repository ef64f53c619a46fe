// Ignition that goes into and beside the image, from manifests/image.yaml `ignition:`: the base
// profile's storage and update-strategy config (baked at /usr/lib/ignition/base.d/) and every published profile's
// config, rendered without SSH keys so a site merges it from its own small config.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadProject, projectPaths } from '../config/index.ts';
import { catalogFromProject, loadProfile } from '../config/profile.ts';
import { renderBaseConfig, renderIgnition, serializeIgnition } from '../plan/ignition.ts';

export function imageIgnition(root: string): {
  ignitionBase?: { profile: string; text: string };
  ignitionConfigs: Record<string, string>;
} {
  const paths = projectPaths(root);
  const project = loadProject(paths);
  const catalog = catalogFromProject(project);
  const dir = join(paths.manifests, 'profiles');
  const every = existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith('.yaml'))
        .map((f) => f.slice(0, -'.yaml'.length))
        .sort()
    : [];
  const load = (name: string) =>
    loadProfile(join(dir, `${name}.yaml`), `manifests/profiles/${name}.yaml`, catalog);
  const settings = project.image.ignition ?? {};
  const base = settings['base-profile'];
  return {
    ...(base
      ? { ignitionBase: { profile: base, text: serializeIgnition(renderBaseConfig(load(base))) } }
      : {}),
    ignitionConfigs: Object.fromEntries(
      (settings['published-profiles'] ?? every).map((name) => [
        name,
        serializeIgnition(renderIgnition(load(name), { forMerge: true })),
      ]),
    ),
  };
}
