// Ignition that goes into and beside the image, from manifests/image.yaml `ignition:`: the base
// profile's storage and update-strategy config (baked at /usr/lib/ignition/base.d/) and every published profile's
// config, rendered without SSH keys so a site merges it from its own small config.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type LoadedProject, loadProject, projectPaths, resolveStream } from '../config/index.ts';
import { catalogFromProject, loadProfile, type SensorProfile } from '../config/profile.ts';
import { ConfigError } from '../errors.ts';
import {
  renderBaseConfig,
  renderIgnition,
  serializeIgnition,
  type TrustFileContents,
} from '../plan/ignition.ts';
import { repositoryOf, trustFiles } from '../plan/trust.ts';

/**
 * The trust files of the stream a profile follows, with their bytes: exactly what that stream's
 * image carries (plan/trust.ts), for Ignition to write before the first rebase. None when the
 * stream is published unsigned. The profile must follow the repository the stream's policy
 * trusts; anything else would be rejected by that very policy.
 */
export function followedTrust(
  project: LoadedProject,
  profile: SensorProfile,
  root: string,
): TrustFileContents[] {
  const stream = profile.follows.slice(profile.follows.lastIndexOf(':') + 1);
  const config = resolveStream(project, stream, root);
  const trust = config.stream.publish.trust;
  if (!trust) return [];
  if (repositoryOf(profile.follows) !== trust.registry)
    throw new ConfigError([
      {
        ...profile.at(['follows']),
        rule: 'follows-trusted',
        message: `stream '${stream}' publishes to ${trust.registry} (publish.registry), the only repository its policy trusts; follow ${trust.registry}:${stream}`,
        value: profile.follows,
      },
    ]);
  return trustFiles(config).map((f) => ({
    path: f.path,
    mode: f.mode,
    contents: f.content ?? readFileSync(f.source!),
  }));
}

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
        (() => {
          const profile = load(name);
          return serializeIgnition(
            renderIgnition(profile, { forMerge: true, trust: followedTrust(project, profile, root) }),
          );
        })(),
      ]),
    ),
  };
}
