// An offline bundle made, checked and loaded. Made: in a temp directory next to the output, the
// plan's site files copied (each checked against the release's SHA256SUMS), its images copied by
// digest with skopeo into OCI layouts (each checked to hold that digest), then bundle.json,
// SHA256SUMS over every file and its detached signature; renamed into place (or tarred, then
// renamed) only when all of it is there. Checked: every file listed with its sha256, nothing
// unlisted, the list signed by a key the caller trusts. Loaded: images pushed by digest into a
// registry, tags last, signatures added to a lookaside directory.
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { PipelineError, UsageError } from '../errors.ts';
import { showKeysSync, signFile, verifyDetached } from '../exec/gpg.ts';
import type { Runner } from '../exec/run.ts';
import { copyExact, inspectConfig, inspectRaw, type Remote, sha256Digest } from '../exec/skopeo.ts';
import { sha256File, writeAtomic } from '../files.ts';
import type { Logger } from '../log.ts';
import { compareVersions } from '../plan/version.ts';
import { BUNDLE_JSON, type BundlePlan, parseSums, renderSums, SUMS, SUMS_SIG } from './bundle.ts';
import { buildDir } from './site.ts';
import type { SiteSource } from './site-source.ts';

/** Every regular file under `dir`, relative to it, sorted. */
export function filesUnder(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...filesUnder(dir, p));
    else out.push(p);
  }
  return out.sort();
}

/** The ref name -> digest of an OCI layout's index.json. */
function layoutRefs(layout: string): Map<string, string> {
  const idx = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as {
    manifests: { digest: string; annotations?: Record<string, string> }[];
  };
  return new Map(
    idx.manifests.flatMap((m) => {
      const name = m.annotations?.['org.opencontainers.image.ref.name'];
      return name ? [[name, m.digest] as const] : [];
    }),
  );
}

export interface MakeRequest {
  plan: BundlePlan;
  /** The published site: its directory or its URL (site-source.ts). */
  site: SiteSource;
  /** Where images are read from (credentials, TLS). */
  remote: Remote;
  /** A directory, or a file ending in .tar. */
  output: string;
  signBy: string;
  gpgHome?: string;
  log: Logger;
}

/** Makes the bundle; returns its size in bytes (the tarball's, or the sum of the directory's files). */
export async function makeBundle(req: MakeRequest): Promise<{ bytes: number; files: number }> {
  const { plan, site, remote, log } = req;
  const tar = req.output.endsWith('.tar');
  const tmp = `${req.output.replace(/\.tar$/, '')}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    // The release's own checksums (publish wrote them): every artifact copied must match.
    const sumsFile = `${buildDir(plan.stream, plan.version)}/SHA256SUMS`;
    const sumsText = await site.text(sumsFile);
    const released = sumsText === undefined ? new Map<string, string>() : parseSums(sumsText).sums;
    await log.step('copy site files', async () => {
      for (const f of plan.files) {
        const dest = join(tmp, f.dest);
        mkdirSync(dirname(dest), { recursive: true });
        await site.copy(f.src, dest);
        const want = f.src.startsWith('prod/streams/') ? released.get(basename(f.src)) : undefined;
        if (want && (await sha256File(dest)) !== want)
          throw new PipelineError(
            `${site.where(f.src)} does not match the release's SHA256SUMS (${site.where(sumsFile)}); not bundled`,
          );
      }
    });
    await log.step('copy images by digest', async () => {
      for (const img of plan.images) {
        const layout = join(tmp, img.layout);
        mkdirSync(dirname(layout), { recursive: true });
        await copyExact(remote, img.src, `oci:${layout}:${img.ref}`, { all: img.all });
        const got = layoutRefs(layout).get(img.ref);
        if (got !== img.digest)
          throw new PipelineError(
            `${img.src} arrived as ${got ?? 'nothing'}, not ${img.digest}; not bundled`,
          );
      }
      // Incremental: the layers the site has already. skopeo looks for each layer at the
      // destination before it reads the source (containers/image copy/single.go:750, copyLayer's
      // TryReusingBlobWithOptions, before GetBlob at :853 @df7e80d2d198), so a load into a
      // registry holding them reads none of them from the bundle.
      for (const l of plan.since?.omitted ?? [])
        rmSync(join(tmp, plan.images[0]!.layout, 'blobs', 'sha256', l.slice('sha256:'.length)), {
          force: true,
        });
    });
    writeAtomic(join(tmp, BUNDLE_JSON), `${JSON.stringify(plan, null, 2)}\n`);
    const entries = [];
    for (const p of filesUnder(tmp)) entries.push({ path: p, sha256: await sha256File(join(tmp, p)) });
    writeAtomic(join(tmp, SUMS), renderSums(entries));
    await signFile(join(tmp, SUMS), req.signBy, req.gpgHome, { run: remote.run });
    const all = filesUnder(tmp);
    let bytes = all.reduce((n, p) => n + statSync(join(tmp, p)).size, 0);
    if (tar) {
      const part = `${req.output}.tmp-${process.pid}`;
      // A reproducible tarball: names sorted, no owners, times zeroed (GNU tar(1) --sort, --mtime).
      await remote.run('tar', [
        '--sort=name',
        '--mtime=@0',
        '--owner=0',
        '--group=0',
        '--numeric-owner',
        '-cf',
        part,
        '-C',
        tmp,
        '.',
      ]);
      renameSync(part, req.output);
      bytes = statSync(req.output).size;
    } else {
      const old = `${req.output}.old-${process.pid}`;
      if (existsSync(req.output)) renameSync(req.output, old);
      renameSync(tmp, req.output);
      rmSync(old, { recursive: true, force: true });
    }
    return { bytes, files: all.length };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
    rmSync(`${req.output}.tmp-${process.pid}`, { force: true });
  }
}

/**
 * The bundle at `path` as a directory: itself, or a tarball unpacked under `work`. A tarball tar
 * cannot read to its end (truncated, damaged) is refused, naming it.
 */
export async function openBundle(run: Runner, path: string, work: string): Promise<string> {
  if (!existsSync(path)) throw new UsageError(`${path} does not exist`);
  if (statSync(path).isDirectory()) return path;
  const dir = join(work, 'bundle');
  mkdirSync(dir, { recursive: true });
  const whole = (r: { exitCode: number; stderr: string }) => {
    if (r.exitCode !== 0)
      throw new PipelineError(
        `${path} is not a whole tar archive (tar: ${r.stderr.trim().split('\n').at(-1) ?? `exit ${r.exitCode}`}); a truncated copy? Nothing was loaded`,
      );
  };
  // Listed first, nothing unpacked yet: a bundle holds files and directories only, so a link
  // (which could make a later member land outside the directory) is refused by name. GNU tar's
  // verbose listing starts each line with the member's type letter, as ls -l does (`-`, `d`, `l`, `h`).
  const listed = await run('tar', ['-tvf', path], { allowFailure: true });
  whole(listed);
  const odd = listed.stdout.split('\n').filter((l) => l && !/^[-d]/.test(l));
  if (odd.length)
    throw new PipelineError(
      `${path} holds members that are not plain files or directories, which a bundle never does:\n  ${odd.join('\n  ')}`,
    );
  whole(await run('tar', ['-xf', path, '-C', dir, '--no-same-owner'], { allowFailure: true }));
  return dir;
}

/**
 * Checks a bundle directory: SHA256SUMS signed by a key in `keyFiles`, every file it lists
 * present with that sha256, and no file it does not list. Throws naming every bad file; returns
 * the plan it carries and the signer.
 */
export async function checkBundle(
  run: Runner,
  dir: string,
  keyFiles: string[],
  label = dir,
): Promise<{ plan: BundlePlan; signer: string; files: number }> {
  for (const f of [SUMS, SUMS_SIG, BUNDLE_JSON])
    if (!existsSync(join(dir, f)))
      throw new PipelineError(`${label}: no ${f}; not a bundle, or an incomplete one`);
  const trusted = keyFiles.flatMap((f) => {
    const shown = showKeysSync(f);
    if ('error' in shown) throw new UsageError(`${f}: ${shown.error}`);
    return shown.keys.map((k) => k.fingerprint);
  });
  const sig = await verifyDetached(join(dir, SUMS), join(dir, SUMS_SIG), keyFiles, { run });
  if ('error' in sig)
    throw new PipelineError(
      `${label}: ${SUMS_SIG} does not verify with ${keyFiles.join(', ')}: ${sig.error}`,
    );
  if (!trusted.includes(sig.signer))
    throw new PipelineError(`${label}: ${SUMS} is signed by ${sig.signer}, not by ${trusted.join(', ')}`);
  const { sums, problems } = parseSums(readFileSync(join(dir, SUMS), 'utf8'));
  const present = filesUnder(dir).filter((p) => p !== SUMS && p !== SUMS_SIG);
  for (const p of present)
    if (!lstatSync(join(dir, p)).isFile()) problems.push(`${p}: not a plain file (a bundle holds no links)`);
  for (const p of present)
    if (!sums.has(p)) problems.push(`${p}: not listed in ${SUMS} (added after the bundle was signed)`);
  for (const [p, want] of sums) {
    if (!existsSync(join(dir, p))) problems.push(`${p}: listed in ${SUMS} but missing`);
    else if ((await sha256File(join(dir, p))) !== want)
      problems.push(`${p}: sha256 differs from ${SUMS} (changed after the bundle was signed)`);
  }
  if (problems.length) throw new PipelineError(`${label}: refused:\n  ${problems.join('\n  ')}`);
  const plan = JSON.parse(readFileSync(join(dir, BUNDLE_JSON), 'utf8')) as BundlePlan;
  return { plan, signer: sig.signer, files: sums.size };
}

/** host/path -> path: the repository's place under another registry host (a mirror's layout). */
export const repoPath = (repository: string) => repository.slice(repository.indexOf('/') + 1);

export interface LoadRequest {
  dir: string;
  plan: BundlePlan;
  /** The site registry, host[:port]; every image goes to <host>/<its repository path>. */
  host: string;
  remote: Remote;
  /** The site's lookaside directory (what sensors' registries.d names, served over HTTP). */
  lookasideDir: string;
  log: Logger;
}

export type LoadResult = Record<
  string,
  'loaded' | 'already-present' | 'tagged' | 'already-tagged' | `kept at newer ${string}`
>;

/**
 * The version (org.opencontainers.image.version, which the build sets: plan/build-plan.ts) of
 * what `repo` holds under a tag whose manifest is `raw`: for an index, of the first image it
 * lists. Undefined when the image has no such label.
 */
async function versionOf(remote: Remote, repo: string, raw: string): Promise<string | undefined> {
  const doc = JSON.parse(raw) as { manifests?: { digest: string }[] };
  const one = doc.manifests?.[0]?.digest ?? sha256Digest(raw);
  const config = (await inspectConfig(remote, `docker://${repo}@${one}`)) as
    | { config?: { Labels?: Record<string, string> } }
    | undefined;
  return config?.config?.Labels?.['org.opencontainers.image.version'];
}

/**
 * Pushes every image of a checked bundle by digest (skopeo refuses rather than converting), then
 * tags <version> and <stream> at the OS index, and adds the signatures to the lookaside
 * directory (a signature already there, byte for byte, is not added again). Converges on re-run.
 * The stream tag never moves back: where it names a newer version (a site loading an older
 * bundle, say to keep it at hand for a rollback), it stays, and the result says so.
 */
export async function loadBundle(req: LoadRequest): Promise<LoadResult> {
  const { dir, plan, host, remote } = req;
  const out: LoadResult = {};
  if (plan.since) {
    const repo = `${host}/${repoPath(plan.repository)}`;
    for (const m of plan.since.manifests) {
      const have = await inspectRaw(remote, `docker://${repo}@${m.digest}`);
      if (have === undefined || sha256Digest(have) !== m.digest)
        throw new PipelineError(
          `this bundle holds only what ${plan.since.version} lacks, and ${repo} has no ${plan.since.version} ${m.arch} image (${m.digest}): load ${plan.since.version} first; nothing was loaded`,
        );
    }
  }
  for (const img of plan.images) {
    const dest = `docker://${host}/${repoPath(img.repository)}@${img.digest}`;
    const before = await inspectRaw(remote, dest);
    if (before !== undefined && sha256Digest(before) === img.digest) {
      out[dest] = 'already-present';
      continue;
    }
    await copyExact(remote, `oci:${join(dir, img.layout)}:${img.ref}`, dest, { all: img.all });
    const after = await inspectRaw(remote, dest);
    if (after === undefined || sha256Digest(after) !== img.digest)
      throw new PipelineError(`${dest}: loaded, but the registry does not hold that digest`);
    out[dest] = 'loaded';
  }
  if (plan.index.carried) {
    const repo = `${host}/${repoPath(plan.repository)}`;
    for (const tag of [plan.version, plan.stream]) {
      const ref = `docker://${repo}:${tag}`;
      const before = await inspectRaw(remote, ref);
      if (before !== undefined && sha256Digest(before) === plan.index.digest) {
        out[ref] = 'already-tagged';
        continue;
      }
      if (tag === plan.stream && before !== undefined) {
        const current = await versionOf(remote, repo, before);
        if (current && compareVersions(current, plan.version) > 0) {
          out[ref] = `kept at newer ${current}`;
          continue;
        }
      }
      await copyExact(remote, `docker://${repo}@${plan.index.digest}`, ref, { all: true });
      out[ref] = 'tagged';
    }
  }
  const sigRoot = join(dir, 'signatures');
  if (existsSync(sigRoot))
    for (const rel of filesUnder(sigRoot)) {
      const digestDir = join(req.lookasideDir, dirname(rel));
      const bytes = readFileSync(join(sigRoot, rel));
      mkdirSync(digestDir, { recursive: true });
      const names = readdirSync(digestDir);
      if (names.some((n) => readFileSync(join(digestDir, n)).equals(bytes))) continue;
      // Readers stop at the first missing signature-N: the next free number, whole or not at all.
      let n = 1;
      while (names.includes(`signature-${n}`)) n++;
      writeAtomic(join(digestDir, `signature-${n}`), bytes);
      out[relative(sigRoot, join(digestDir, `signature-${n}`))] = 'loaded';
    }
  return out;
}
