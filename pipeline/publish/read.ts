// Reading the world for publish/promote/rollout: a version's per-arch meta.json from a build
// directory, and what a site directory already holds (files with their sha256, releases.json,
// updates.json). Glue only; the planning is pure (site.ts).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ARCHES } from '../arch.ts';
import { DataError, UsageError } from '../errors.ts';
import { sha256File } from '../files.ts';
import { readMetaFile } from '../records.ts';
import { type ArchBuild, buildDir, type Existing, type ReleasesDoc, type UpdatesDoc } from './site.ts';
import { type DocKind, problems } from './validate.ts';

function readJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new DataError(`${file}: not JSON: ${(err as Error).message}`);
  }
}

/** The builds of `version` under `buildRoot` (DIR, or DIR/builds), one per arch found. */
export function readBuilds(buildRoot: string, version: string): ArchBuild[] {
  const builds = existsSync(join(buildRoot, 'builds')) ? join(buildRoot, 'builds') : buildRoot;
  const dir = join(builds, version);
  if (!existsSync(dir)) throw new UsageError(`no build ${version} in ${builds}`);
  const out: ArchBuild[] = [];
  for (const arch of ARCHES) {
    const file = join(dir, arch, 'meta.json');
    if (!existsSync(file)) continue;
    const meta = readMetaFile(file);
    out.push({ arch, meta, dir: join(dir, arch) });
  }
  return out;
}

/** A site document, schema-checked on the way in too: a broken file stops the run, unchanged. */
export function readDoc<T>(siteDir: string, rel: string, kind: DocKind): T | undefined {
  const file = join(siteDir, rel);
  if (!existsSync(file)) return undefined;
  return checkedDoc<T>(file, readJson(file), kind);
}

/** A site document's text (read from anywhere, `label` naming where), parsed and schema-checked. */
export function parseDoc<T>(label: string, text: string, kind: DocKind): T {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new DataError(`${label}: not JSON: ${(err as Error).message}`);
  }
  return checkedDoc<T>(label, doc, kind);
}

function checkedDoc<T>(label: string, doc: unknown, kind: DocKind): T {
  const p = problems(kind, doc);
  if (p.length) throw new DataError(`${label}: does not match ${kind}.schema.json:\n  ${p.join('\n  ')}`);
  return doc as T;
}

/**
 * What the site holds at the given destination paths, plus the stream's index documents and its
 * stream metadata; with `version`, that version's release.json too.
 */
export async function readExisting(
  siteDir: string,
  stream: string,
  dests: string[],
  version?: string,
): Promise<Existing> {
  const files: Existing['files'] = {};
  for (const d of dests) {
    const p = join(siteDir, d);
    if (existsSync(p)) files[d] = { size: statSync(p).size, sha256: await sha256File(p) };
  }
  return {
    files,
    releases: readDoc<ReleasesDoc>(siteDir, `prod/streams/${stream}/releases.json`, 'releases'),
    updates: readDoc<UpdatesDoc>(siteDir, `updates/${stream}.json`, 'updates'),
    // Only compared with what is rendered (site.ts keepModified): unreadable means rewritten.
    documents: Object.fromEntries(
      [`streams/${stream}.json`, ...(version ? [`${buildDir(stream, version)}/release.json`] : [])].flatMap(
        (rel) => {
          try {
            return [[rel, JSON.parse(readFileSync(join(siteDir, rel), 'utf8')) as unknown]];
          } catch {
            return [];
          }
        },
      ),
    ),
  };
}
