import { existsSync, linkSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { PipelineError } from '../errors.ts';
import type { GitHub } from '../exec/github.ts';
import { signFile } from '../exec/gpg.ts';
import { copyHashed, removeStaleTemps, sha256File, sha256Hex, writeAtomic } from '../files.ts';
import type { Logger } from '../log.ts';
import {
  type Action,
  type ActionInput,
  type Outcome,
  PHASES,
  type Phase,
  type PlannedAsset,
  phaseOf,
  planActions,
  type Release,
} from './actions.ts';
import { syncRelease, type WantedAsset } from './github.ts';
import { openTagging, type TagSession } from './image-tags.ts';
import { openPush, type Pushed, type PushSession } from './images.ts';
import type { Document, SitePlan } from './site.ts';
import { checkDoc } from './validate.ts';

export type { ImageJob } from './actions.ts';

export interface ApplyRequest extends ActionInput {
  siteDir: string;
  github?: { gh: GitHub; spec: Release };
  /** Files named at a GitHub release were checked there already (promote: publish put them). */
  githubChecked?: boolean;
  /** How files get into the site: hard-linked where possible (publish, promote), else copied. */
  link?: boolean;
  gpgHome?: string;
  log: Logger;
}

export interface ApplyResult {
  pushed?: Pushed;
  files: Record<string, 'copied' | 'present'>;
  signed: string[];
  documents: Record<string, 'written' | 'unchanged'>;
  github?: string;
  /** Every action run, in order, with its outcome (as the JSON log has them). */
  actions: { action: Action; outcome: Outcome }[];
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

const phaseTitle: Record<Phase, string> = {
  images: 'push images by digest',
  artifacts: 'copy and sign artifacts',
  'github-assets': 'GitHub draft release and assets',
  tags: 'sign and tag',
  metadata: 'write metadata',
  done: 'GitHub publish release',
};

const outcome = (did: boolean): Outcome => (did ? 'done' : 'already-present');

/**
 * Runs the actions planActions makes of the request, in order, one phase (step) at a time; each
 * action's outcome is logged as a `publish-action` event, each finished phase as a `publish-step`.
 */
export async function applyPlan(req: ApplyRequest): Promise<ApplyResult> {
  const { plan, siteDir, log } = req;
  const actions = planActions(req);
  const result: ApplyResult = { files: {}, signed: [], documents: {}, actions: [] };
  const job = req.images;
  let push: PushSession | undefined;
  let tagging: TagSession | undefined;
  let draft: Awaited<ReturnType<typeof syncRelease>> | undefined;
  const docs = new Map(plan.documents.map((d) => [d.path, d]));
  // Signing overlaps copying: a file's signature starts (gpg, a process of its own) as soon as
  // its copy is checked, while the next file is copied and hashed; its sign-file action, run in
  // its place, waits for it. One gpg at a time, in the order the plan signs.
  const signs = new Set(actions.flatMap((a) => (a.kind === 'sign-file' ? [a.file] : [])));
  const signing = new Map<string, Promise<Outcome>>();
  let gpgQueue: Promise<unknown> = Promise.resolve();
  const startSign = (rel: string): Promise<Outcome> => {
    const p = gpgQueue.then(async (): Promise<Outcome> => {
      const file = join(siteDir, rel);
      if (existsSync(`${file}.sig`)) return 'already-present';
      await signFile(file, req.signBy!, req.gpgHome);
      result.signed.push(rel);
      return 'done';
    });
    gpgQueue = p.catch(() => {}); // a failure is the sign-file action's to report
    signing.set(rel, p);
    return p;
  };

  const run = async (a: Action): Promise<Outcome> => {
    switch (a.kind) {
      case 'push-image':
      case 'push-index': {
        if (!job) throw new PipelineError(`${a.kind}: no image target`);
        if (!push) {
          push = await openPush(job.target, job.archives);
          const index = actions.find((x) => x.kind === 'push-index')?.digest;
          if (push.index !== index)
            throw new PipelineError(
              `the archives make index ${push.index}, the plan says ${index}: their manifests differ from what their index.json names`,
            );
        }
        const r = a.kind === 'push-image' ? await push.pushArch(a.arch) : await push.pushIndex();
        if (a.kind === 'push-index') {
          result.pushed = { manifests: push.manifests, index: push.index };
          log.info(`index ${push.index}`);
        }
        return outcome(r === 'pushed');
      }
      case 'copy-file': {
        const present = plan.files.find((f) => f.dest === a.dest)?.state === 'present';
        const copied = await copyIn(siteDir, a, present, Boolean(req.link));
        result.files[a.dest] = copied ? 'copied' : 'present';
        if (signs.has(a.dest)) startSign(a.dest).catch(() => {});
        return outcome(copied);
      }
      case 'write-sums': {
        const dest = join(siteDir, a.dest);
        if (existsSync(dest) && readFileSync(dest, 'utf8') === a.text) return 'already-present';
        rmSync(`${dest}.sig`, { force: true });
        writeAtomic(dest, a.text);
        return 'done';
      }
      case 'sign-file':
        return signing.get(a.file) ?? startSign(a.file);
      case 'github-draft': {
        const gh = req.github!;
        draft = await syncRelease(
          gh.gh,
          { ...a.release, assets: wantedAssets(siteDir, a.assets) },
          { publish: false, log: (m) => log.info(m) },
        );
        await checkDownloads(gh.gh, draft.release.id, plan);
        return outcome(Object.values(draft.assets).some((r) => r !== 'kept'));
      }
      case 'sign-image':
      case 'tag': {
        if (!job || !result.pushed) throw new PipelineError(`${a.kind}: no images pushed`);
        tagging ??= await openTagging(job.target, result.pushed, job.sign);
        if (a.kind === 'sign-image') return outcome((await tagging.sign(a.digest, a.identity)) === 'signed');
        if (a.digest !== result.pushed.index)
          throw new PipelineError(`tag ${a.tag}: planned ${a.digest}, pushed ${result.pushed.index}`);
        const r = await tagging.tag(a.tag);
        log.info(`tag ${a.tag} ${r}`);
        return outcome(r !== 'already-tagged');
      }
      case 'write-document': {
        const d = docs.get(a.path);
        if (!d) throw new PipelineError(`${a.path}: not a document of the plan`);
        const r = writeDocument(siteDir, d);
        result.documents[a.path] = r;
        return outcome(r === 'written');
      }
      case 'github-publish': {
        const gh = req.github!;
        const r = await syncRelease(
          gh.gh,
          { ...a.release, assets: wantedAssets(siteDir, draftAssets(actions)) },
          { publish: true, log: (m) => log.info(m) },
        );
        result.github = r.published;
        return outcome(r.published === 'published');
      }
    }
  };

  type Done = { action: Action; outcome: Outcome };
  const record = (d: Done) => {
    log.event({ event: 'publish-action', ...d });
    result.actions.push(d);
  };
  const runPhase = async (phase: Phase, done: (d: Done) => void) => {
    const todo = actions.filter((a) => phaseOf(a) === phase);
    if (todo.length)
      await log.step(phaseTitle[phase], async () => {
        for (const a of todo) done({ action: a, outcome: await run(a) });
      });
  };

  try {
    for (const phase of PHASES) {
      if (phase === 'artifacts') continue; // run beside the images (below)
      if (phase === 'github-assets' && !req.github && !req.githubChecked)
        if (plan.files.some((f) => f.served === 'github'))
          throw new PipelineError(
            'the plan names files at a GitHub release, but no GitHub release is being made; metadata not written',
          );
      // Everything a document refers to exists now; check anyway before the first one lands.
      if (phase === 'metadata')
        for (const a of actions) {
          const f = a.kind === 'copy-file' ? a.dest : a.kind === 'sign-file' ? `${a.file}.sig` : undefined;
          if (f && !existsSync(join(siteDir, f)))
            throw new PipelineError(`${f} is missing; metadata not written`);
        }
      if (phase === 'images') {
        // The site's files are copied and signed while the images are pushed: neither needs the
        // other, and nothing refers to either before the tags and metadata that follow both. The
        // log keeps the plan's order: the artifacts' actions are recorded after the images'.
        const later: Done[] = [];
        const [images, files] = await Promise.allSettled([
          runPhase('images', record),
          runPhase('artifacts', (d) => later.push(d)),
        ]);
        for (const d of later) record(d);
        if (images.status === 'rejected') throw images.reason;
        boundary(log, 'images');
        if (files.status === 'rejected') throw files.reason;
        boundary(log, 'artifacts');
        continue;
      }
      await runPhase(phase, record);
      boundary(log, phase);
    }
  } finally {
    await gpgQueue; // no gpg outlives the run
    push?.close();
    tagging?.close();
  }
  return result;
}

/** Copies (or links) a planned file into the site unless the plan found it there; whether it did. */
async function copyIn(
  siteDir: string,
  a: Extract<Action, { kind: 'copy-file' }>,
  present: boolean,
  link: boolean,
): Promise<boolean> {
  if (present) return false;
  const dest = join(siteDir, a.dest);
  // A replaced file's old signature must not outlive it.
  rmSync(`${dest}.sig`, { force: true });
  mkdirSync(dirname(dest), { recursive: true });
  const tmp = join(dirname(dest), `.${basename(dest)}.tmp-${process.pid}`);
  rmSync(tmp, { force: true });
  removeStaleTemps(dest); // a killed run's partial copy
  // The copy must hash to what meta.json records before it takes the file's place: the bytes
  // are hashed as they are written (one read), a link's as they are read back.
  let linked = false;
  if (link)
    try {
      linkSync(a.src, tmp);
      linked = true;
    } catch {}
  const got = linked ? await sha256File(tmp) : await copyHashed(a.src, tmp);
  if (got !== a.sha256) {
    rmSync(tmp, { force: true });
    throw new PipelineError(`${a.src}: sha256 ${got}, but meta.json records ${a.sha256}; not published`);
  }
  renameSync(tmp, dest);
  return true;
}

/** The documents name these files at the release's download URL: GitHub's own must be it. */
async function checkDownloads(gh: GitHub, releaseId: number, plan: SitePlan): Promise<void> {
  const named = plan.files.filter((f) => f.served === 'github');
  if (!named.length) return;
  const have = await gh.listAssets(releaseId);
  const wrong = named.filter((f) => have.find((a) => a.name === f.name)?.browser_download_url !== f.location);
  if (wrong.length)
    throw new PipelineError(
      `GitHub serves ${wrong.map((f) => `${f.name} at ${have.find((a) => a.name === f.name)?.browser_download_url ?? 'no URL (not an asset)'}`).join(', ')}, not where the metadata would name it (${wrong[0]!.location}); metadata not written. Set GITHUB_SERVER_URL to the server's web URL.`,
    );
}

const draftAssets = (actions: Action[]): PlannedAsset[] =>
  actions.flatMap((a) => (a.kind === 'github-draft' ? a.assets : []));

/** GitHub assets from the site's files: size and sha256 as planned, else read (the .sig files). */
function wantedAssets(siteDir: string, assets: PlannedAsset[]): WantedAsset[] {
  return assets.map((a) => {
    const path = join(siteDir, a.file);
    if (a.sha256 !== undefined && a.size !== undefined)
      return { name: a.name, path, size: a.size, sha256: a.sha256 };
    const bytes = readFileSync(path);
    return {
      name: a.name,
      path,
      size: bytes.length,
      sha256: sha256Hex(bytes),
    };
  });
}
