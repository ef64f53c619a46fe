// Applies a site plan in the order that keeps every reader consistent: images pushed by digest and
// artifacts copied in, every artifact signed and SHA256SUMS written, the GitHub draft filled; then
// tags; then the metadata (each document schema-checked and written atomically); the GitHub
// release is published last. Each step checks what is already there, so a re-run converges.
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, linkSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PipelineError } from '../errors.ts';
import type { GitHub } from '../exec/github.ts';
import { signFile } from '../exec/gpg.ts';
import { sha256File, writeAtomic } from '../files.ts';
import type { Logger } from '../log.ts';
import { type ReleaseSpec, syncRelease, type WantedAsset } from './github.ts';
import {
  type ArchImage,
  type ImageTarget,
  type Pushed,
  pushImages,
  type SignOptions,
  signAndTag,
} from './images.ts';
import type { Document, SitePlan } from './site.ts';
import { checkDoc } from './validate.ts';

export interface ImageJob {
  target: ImageTarget;
  archives: ArchImage[];
  tags: string[];
  sign: SignOptions;
}

export interface ApplyRequest {
  plan: SitePlan;
  siteDir: string;
  images?: ImageJob;
  /** GPG key for the artifacts' .sig files; without it nothing is signed (and coreos-installer needs --insecure). */
  signBy?: string;
  gpgHome?: string;
  github?: { gh: GitHub; spec: Omit<ReleaseSpec, 'assets'> };
  /** Files named at a GitHub release were checked there already (promote: publish put them). */
  githubChecked?: boolean;
  /** How files get into the site: copied (publish) or hard-linked where possible (promote). */
  link?: boolean;
  log: Logger;
}

export interface ApplyResult {
  pushed?: Pushed;
  files: Record<string, 'copied' | 'present'>;
  signed: string[];
  documents: Record<string, 'written' | 'unchanged'>;
  github?: string;
}

/** Deterministic JSON: two-space indent, trailing newline. */
export const renderJson = (doc: unknown) => `${JSON.stringify(doc, null, 2)}\n`;

/** Validates and writes one document unless the file already holds exactly these bytes. */
export function writeDocument(siteDir: string, d: Document): 'written' | 'unchanged' {
  const file = join(siteDir, d.path);
  checkDoc(d.kind, d.path, d.json);
  const text = renderJson(d.json);
  if (existsSync(file) && readFileSync(file, 'utf8') === text) return 'unchanged';
  writeAtomic(file, text);
  return 'written';
}

/** Marks a step boundary in the JSON log (tests kill the process at these). */
const boundary = (log: Logger, step: string) => log.event({ event: 'publish-step', step });

export async function applyPlan(req: ApplyRequest): Promise<ApplyResult> {
  const { plan, siteDir, log } = req;
  const result: ApplyResult = { files: {}, signed: [], documents: {} };

  if (req.images) {
    const job = req.images;
    result.pushed = await log.step('push images by digest', () => pushImages(job.target, job.archives));
    log.info(`index ${result.pushed.index}`);
  }
  boundary(log, 'images');

  await log.step('copy artifacts', async () => {
    for (const f of plan.files) {
      const dest = join(siteDir, f.dest);
      if (f.state === 'present') {
        result.files[f.dest] = 'present';
        continue;
      }
      // A replaced file's old signature must not outlive it.
      rmSync(`${dest}.sig`, { force: true });
      mkdirSync(dirname(dest), { recursive: true });
      const tmp = join(dirname(dest), `.${f.name}.tmp-${process.pid}`);
      rmSync(tmp, { force: true });
      if (req.link) {
        try {
          linkSync(f.src, tmp);
        } catch {
          copyFileSync(f.src, tmp);
        }
      } else copyFileSync(f.src, tmp);
      const got = await sha256File(tmp);
      if (got !== f.sha256) {
        rmSync(tmp, { force: true });
        throw new PipelineError(`${f.src}: sha256 ${got}, but meta.json records ${f.sha256}; not published`);
      }
      renameSync(tmp, dest);
      result.files[f.dest] = 'copied';
    }
    for (const s of plan.sums) {
      const dest = join(siteDir, s.dest);
      if (existsSync(dest) && readFileSync(dest, 'utf8') === s.text) continue;
      rmSync(`${dest}.sig`, { force: true });
      writeAtomic(dest, s.text);
    }
    const all = join(siteDir, plan.files[0] ? dirname(dirname(plan.files[0].dest)) : '.', 'SHA256SUMS');
    const text = [...new Set(plan.files.map((f) => `${f.sha256}  ${f.name}\n`))].join('');
    if (!existsSync(all) || readFileSync(all, 'utf8') !== text) {
      rmSync(`${all}.sig`, { force: true });
      writeAtomic(all, text);
    }
  });
  if (req.signBy) {
    const key = req.signBy;
    await log.step('sign artifacts', async () => {
      const dir = dirname(dirname(plan.files[0]?.dest ?? '.'));
      const targets = [
        ...plan.files.map((f) => f.dest),
        ...plan.sums.map((s) => s.dest),
        join(dir, 'SHA256SUMS'),
      ];
      for (const t of targets) {
        const file = join(siteDir, t);
        if (existsSync(`${file}.sig`)) continue;
        await signFile(file, key, req.gpgHome);
        result.signed.push(t);
      }
    });
  }
  boundary(log, 'artifacts');

  if (req.github) {
    const gh = req.github;
    const assets = releaseAssets(plan, siteDir, Boolean(req.signBy));
    const draft = await log.step('GitHub draft release and assets', () =>
      syncRelease(gh.gh, { ...gh.spec, assets }, { publish: false, log: (m) => log.info(m) }),
    );
    // The documents name these files at the release's download URL: GitHub's own must be it.
    const named = plan.files.filter((f) => f.served === 'github');
    if (named.length) {
      const have = await gh.gh.listAssets(draft.release.id);
      const wrong = named.filter(
        (f) => have.find((a) => a.name === f.name)?.browser_download_url !== f.location,
      );
      if (wrong.length)
        throw new PipelineError(
          `GitHub serves ${wrong.map((f) => `${f.name} at ${have.find((a) => a.name === f.name)?.browser_download_url ?? 'no URL (not an asset)'}`).join(', ')}, not where the metadata would name it (${wrong[0]!.location}); metadata not written. Set GITHUB_SERVER_URL to the server's web URL.`,
        );
    }
  } else if (!req.githubChecked && plan.files.some((f) => f.served === 'github'))
    throw new PipelineError(
      'the plan names files at a GitHub release, but no GitHub release is being made; metadata not written',
    );
  boundary(log, 'github-assets');

  if (req.images && result.pushed) {
    const job = req.images;
    const pushed = result.pushed;
    const r = await log.step(`sign and tag ${job.tags.join(', ')}`, () =>
      signAndTag(job.target, pushed, job.tags, job.sign),
    );
    log.info(
      `tags: ${Object.entries(r.tags)
        .map(([t, s]) => `${t} ${s}`)
        .join(', ')}`,
    );
  }
  boundary(log, 'tags');

  await log.step('write metadata', async () => {
    // Everything a document refers to exists now; check anyway before the first one lands.
    for (const f of plan.files) {
      if (!existsSync(join(siteDir, f.dest)))
        throw new PipelineError(`${f.dest} is missing; metadata not written`);
      if (req.signBy && !existsSync(join(siteDir, `${f.dest}.sig`)))
        throw new PipelineError(`${f.dest}.sig is missing; metadata not written`);
    }
    for (const d of plan.documents) result.documents[d.path] = writeDocument(siteDir, d);
  });
  boundary(log, 'metadata');

  if (req.github) {
    const gh = req.github;
    const assets = releaseAssets(plan, siteDir, Boolean(req.signBy));
    const r = await log.step('GitHub publish release', () =>
      syncRelease(gh.gh, { ...gh.spec, assets }, { publish: true, log: (m) => log.info(m) }),
    );
    result.github = r.published;
  }
  boundary(log, 'done');
  return result;
}

/** GitHub assets: every artifact, its .sig, and the version's SHA256SUMS (+ .sig). */
export function releaseAssets(plan: SitePlan, siteDir: string, signed: boolean): WantedAsset[] {
  const out: WantedAsset[] = [];
  const add = (name: string, rel: string) => {
    const path = join(siteDir, rel);
    const bytes = readFileSync(path);
    out.push({ name, path, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') });
  };
  for (const f of plan.files) {
    if (out.some((o) => o.name === f.name)) continue;
    out.push({ name: f.name, path: join(siteDir, f.dest), size: f.size, sha256: f.sha256 });
    if (signed) add(`${f.name}.sig`, `${f.dest}.sig`);
  }
  const dir = dirname(dirname(plan.files[0]?.dest ?? '.'));
  add('SHA256SUMS', join(dir, 'SHA256SUMS'));
  if (signed) add('SHA256SUMS.sig', join(dir, 'SHA256SUMS.sig'));
  return out;
}
