// `rock-image pin`: resolves the service and agent images the manifests name by tag to the digest
// each tag points at now and writes manifests/image-pins.json (a diff of what changed on stdout);
// `--check` writes nothing and exits 1 when the file is stale. Builds read the file offline.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { loadProject, projectPaths } from '../config/index.ts';
import { parseYaml } from '../config/yaml.ts';
import { CommandError, ConfigError, type ConfigIssue, ExitCode, type Location } from '../errors.ts';
import { tagDigest } from '../exec/skopeo.ts';
import { type ImageLock, parseImageLock, serializeImageLock } from '../plan/image-lock.ts';
import { diffPins, IMAGE_PINS_FILE, repositoryOf, tagRefs } from '../plan/image-pins.ts';
import type { Command } from './types.ts';

export const pin: Command = {
  name: 'pin',
  summary: 'pin service and agent images by digest in manifests/image-pins.json (registry access)',
  usage: `
Usage: rock-image pin [--check] [--plain-http HOST]...

Resolves every service and agent image that manifests/image.yaml and the streams name by tag to
the digest the tag points at now, with skopeo (the multi-arch index's digest when the tag names
an index, so one pin serves every arch), and writes ${IMAGE_PINS_FILE}. Prints one line per change:
'+ REF DIGEST' new, '~ REF OLD -> NEW' moved, '- REF DIGEST' no longer named. References that
already name '@sha256:' are checked to resolve and not listed. Builds take the pins from the
file, offline: the quadlets run '<repository>@<digest>' and bootc pulls them with an update
(/usr/lib/bootc/bound-images.d). Commit the file.

Options:
  --check            write nothing; print the same diff and exit 1 when the file is stale, 0 when current
  --plain-http HOST  reach registry HOST (host:port) over plain HTTP, without TLS verification
                     (skopeo --tls-verify=false); repeatable. Default: every registry over verified TLS

Registry access uses the containers configuration skopeo reads (registries.conf, auth.json).
A reference that does not resolve is an error at the line naming it (exit 65); nothing is written.
`,
  options: { check: { type: 'boolean' }, 'plain-http': { type: 'string', multiple: true } },
  async run(ctx, values) {
    const project = loadProject(projectPaths(ctx.root));
    const uses: { ref: string; at: Location }[] = [];
    const at = (source: typeof project.imageSource, path: string[]): Location => ({
      file: source.file,
      ...source.locate(path),
    });
    for (const [n, s] of Object.entries(project.image.services))
      uses.push({ ref: s.image, at: at(project.imageSource, ['services', n, 'image']) });
    for (const [n, a] of Object.entries(project.image.agents))
      uses.push({ ref: a.image, at: at(project.imageSource, ['agents', n, 'image']) });
    for (const { raw, source } of project.streams.values())
      for (const [n, s] of Object.entries(raw.services ?? {}))
        if (s.image) uses.push({ ref: s.image, at: at(source, ['services', n, 'image']) });

    const path = join(ctx.root, IMAGE_PINS_FILE);
    const text = existsSync(path) ? readFileSync(path, 'utf8') : undefined;
    const before: ImageLock = text ? parseImageLock(text, IMAGE_PINS_FILE) : { images: {} };
    const day = new Date(ctx.now()).toISOString().slice(0, 10);
    const plain = new Set((values['plain-http'] as string[] | undefined) ?? []);
    const after: ImageLock = { images: {} };
    const issues: ConfigIssue[] = [];
    const resolve = async (ref: string, where: Location[], rule: string, what: string) => {
      try {
        const tlsVerify = !plain.has(ref.split('/')[0]!);
        return await ctx.log.step(`resolve ${ref}`, () => tagDigest(ctx.run, ref, { tlsVerify }));
      } catch (err) {
        if (!(err instanceof CommandError)) throw err;
        const why = err.message.split('\n').filter(Boolean).pop() ?? '';
        for (const w of where)
          issues.push({ ...w, path: '', rule, message: `${ref} ${what}: ${why}`, value: ref });
        return undefined;
      }
    };
    // Tags: the digest each points at now.
    for (const [ref, where] of tagRefs(uses)) {
      const digest = await resolve(ref, where, 'image-resolves', 'does not resolve in its registry');
      if (digest)
        after.images[ref] = {
          digest,
          resolved: before.images[ref]?.digest === digest ? before.images[ref]!.resolved : day,
        };
    }
    // References by digest: the digest must still be there, and be what the registry serves.
    for (const u of uses.filter((x) => x.ref.includes('@sha256:'))) {
      const ref = `${repositoryOf(u.ref)}@${u.ref.split('@')[1]}`;
      const digest = await resolve(ref, [u.at], 'pin-resolves', 'does not resolve in its registry');
      if (digest && digest !== u.ref.split('@')[1])
        issues.push({
          ...u.at,
          path: '',
          rule: 'pin-resolves',
          message: `${ref}: the registry serves ${digest}`,
          value: u.ref,
        });
    }
    // With --check, the pins the file holds must resolve too (a pin of a moved tag stays valid
    // only while its repository still has the digest).
    if (values.check && text) {
      const source = parseYaml(text, IMAGE_PINS_FILE).source!;
      for (const [ref, e] of Object.entries(before.images)) {
        if (after.images[ref]?.digest === e.digest) continue;
        const where = { file: IMAGE_PINS_FILE, ...source.locate(['images', ref], true) };
        const digest = await resolve(
          `${repositoryOf(ref)}@${e.digest}`,
          [where],
          'pin-resolves',
          `(the pin of ${ref}) does not resolve in its registry`,
        );
        if (digest && digest !== e.digest)
          issues.push({
            ...where,
            path: '',
            rule: 'pin-resolves',
            message: `${ref}: the registry serves ${digest} for ${e.digest}`,
            value: ref,
          });
      }
    }
    if (issues.length) throw new ConfigError(issues);

    const changes = diffPins(before, after);
    ctx.stdout.write(changes.map((l) => `${l}\n`).join(''));
    if (values.check) {
      if (changes.length) ctx.log.error(`${IMAGE_PINS_FILE} is stale: run 'rock-image pin' and commit it`);
      return changes.length ? 1 : 0;
    }
    const out = serializeImageLock(after);
    if (out !== text) {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(`${path}.tmp`, out);
      renameSync(`${path}.tmp`, path);
    }
    ctx.log.info(`${IMAGE_PINS_FILE}: ${Object.keys(after.images).length} pins, ${changes.length} changed`);
    return ExitCode.ok;
  },
};
