// Where a bundle reads the published site: its directory (the gh-pages checkout), or over
// HTTP(S) where it is served (what a site operator has). Over HTTP there is no listing, so the
// files are the ones the metadata names: release.json's artifacts at the location it names
// (the site, a GitHub release download or an object store), with their .sig; the per-arch
// SHA256SUMS (which also name the files that are not stream artifacts, served on the site); the
// version's SHA256SUMS; and the image signatures, read from the lookaside as containers/image
// reads it. Glue: the plan (bundle.ts) stays pure and takes the lists this returns.
import { createHash } from 'node:crypto';
import { copyFileSync, createWriteStream, existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream } from 'node:stream/web';
import { PipelineError, UnavailableError } from '../errors.ts';
import { parseSums } from './bundle.ts';
import { filesUnder } from './bundle-apply.ts';
import { lookasidePath } from './image-tags.ts';
import { buildDir } from './site.ts';

export interface SiteSource {
  /** The directory or the base URL, for messages. */
  label: string;
  /** Where a site path is read from: a file path, or the URL. */
  where(rel: string): string;
  /** A site file's text (documents, SHA256SUMS); undefined when the site has none. */
  text(rel: string): Promise<string | undefined>;
  /** The site files of `version` (relative to the site root) of the arches `release` names. */
  versionFiles(stream: string, version: string, release: ReleaseMedia | undefined): Promise<string[]>;
  /** Lookaside files (relative to signatures/) of these digests of `repository`. */
  signatureFiles(repository: string, digests: string[]): Promise<string[]>;
  /**
   * Copies site path `rel` to `dest`. Over HTTP streamed to disk and hashed while written, and
   * checked against the sha256 the metadata records for it; every failure names the URL.
   */
  copy(rel: string, dest: string): Promise<void>;
}

/** The release.json fields naming where each artifact is (publish/site.ts renderRelease). */
export interface ReleaseMedia {
  architectures: Record<
    string,
    {
      media?: Record<
        string,
        {
          artifacts?: Record<
            string,
            Record<string, { location: string; signature?: string; sha256: string }>
          >;
        }
      >;
    }
  >;
}

/** `--site`: a URL (http, https) or a directory. */
export const isUrl = (site: string) => /^https?:\/\//i.test(site);

/** The site directory as publish writes it: every file under the version's directory is listed. */
export function dirSource(dir: string): SiteSource {
  return {
    label: dir,
    where: (rel) => join(dir, rel),
    text: async (rel) => (existsSync(join(dir, rel)) ? readFileSync(join(dir, rel), 'utf8') : undefined),
    versionFiles: async (stream, version) => {
      const d = buildDir(stream, version);
      return existsSync(join(dir, d)) ? filesUnder(join(dir, d)).map((f) => `${d}/${f}`) : [];
    },
    signatureFiles: async () =>
      existsSync(join(dir, 'signatures')) ? filesUnder(join(dir, 'signatures')) : [],
    copy: async (rel, dest) => {
      const src = join(dir, rel);
      if (!existsSync(src)) throw new PipelineError(`${src} is missing on the site; not bundled`);
      copyFileSync(src, dest);
    },
  };
}

/** How long to wait for a server's answer, 60 s (not for the whole body: disk images are large). */
const ANSWER_TIMEOUT_MS = 60_000;
/**
 * containers/image refuses a digest with signature-1 to signature-128 all there, reading no more
 * (docker/docker_image_src.go:37, :517-519 @df7e80d2d198); so does this reader.
 */
const MAX_SIGNATURES = 128;

/** GET `url`; the response, or undefined for 404 when `optional`. Failures name the URL. */
async function get(fetcher: typeof fetch, url: string, optional: boolean): Promise<Response | undefined> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), ANSWER_TIMEOUT_MS);
  let res: Response;
  try {
    res = await fetcher(url, { redirect: 'follow', signal: abort.signal });
  } catch (err) {
    const e = err as Error & { cause?: Error };
    throw new UnavailableError(`${url}: cannot be read: ${e.cause?.message ?? e.message}; not bundled`);
  } finally {
    clearTimeout(timer);
  }
  if (optional && res.status === 404) {
    await res.body?.cancel();
    return undefined;
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new PipelineError(`${url}: HTTP ${res.status}; not bundled`);
  }
  return res;
}

/**
 * `url` streamed into `dest` (never whole in memory), hashed while written; refused, naming the
 * URL, when its sha256 is not each of `want`. `dest` is removed on failure.
 */
export async function download(fetcher: typeof fetch, url: string, dest: string, want: string[]) {
  const res = (await get(fetcher, url, false))!;
  const hash = createHash('sha256');
  const tee = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      done(null, chunk);
    },
  });
  try {
    if (!res.body) throw new PipelineError(`${url}: HTTP ${res.status} with no body; not bundled`);
    await pipeline(Readable.fromWeb(res.body as ReadableStream), tee, createWriteStream(dest));
  } catch (err) {
    rmSync(dest, { force: true });
    if (err instanceof PipelineError) throw err;
    throw new UnavailableError(`${url}: download broke off: ${(err as Error).message}; not bundled`);
  }
  const got = hash.digest('hex');
  const bad = [...new Set(want)].filter((w) => w !== got);
  if (bad.length) {
    rmSync(dest, { force: true });
    throw new PipelineError(`${url}: sha256 ${got}, but the release records ${bad.join(', ')}; not bundled`);
  }
}

/**
 * The site at `base` (http or https; the URL the stream site is served at, e.g.
 * https://rocknsm.github.io/rocknsm-coreos). `fetcher`: the HTTP client (default: fetch).
 */
export function urlSource(base: string, fetcher: typeof fetch = fetch): SiteSource {
  const root = base.replace(/\/+$/, '');
  const at = (rel: string) => `${root}/${rel}`;
  /** Site path -> where it is read and the sha256s the metadata records for it. */
  const named = new Map<string, { url: string; sha256: string[] }>();
  const name = (rel: string, url: string, sha256?: string) => {
    const n = named.get(rel) ?? { url, sha256: [] };
    n.url = url;
    if (sha256) n.sha256.push(sha256);
    named.set(rel, n);
  };
  const text = async (rel: string) => {
    const res = await get(fetcher, at(rel), true);
    return res && (await res.text());
  };
  return {
    label: root,
    where: (rel) => named.get(rel)?.url ?? at(rel),
    text,
    versionFiles: async (stream, version, release) => {
      if (!release) return [];
      const dir = buildDir(stream, version);
      const files = [`${dir}/release.json`];
      // Where release.json names each artifact, with its signature and sha256.
      let signed = false;
      for (const [arch, a] of Object.entries(release.architectures))
        for (const p of Object.values(a.media ?? {}))
          for (const f of Object.values(p.artifacts ?? {}))
            for (const art of Object.values(f)) {
              const file = decodeURIComponent(new URL(art.location).pathname.split('/').at(-1) ?? '');
              // A file name, never a path: what the bundle writes stays inside it.
              if (!file || file === '.' || file === '..' || file.includes('/'))
                throw new PipelineError(
                  `${at(`${dir}/release.json`)}: ${art.location} does not end in a file name; not bundled`,
                );
              const rel = `${dir}/${arch}/${file}`;
              name(rel, art.location, art.sha256);
              files.push(rel);
              if (art.signature) {
                name(`${rel}.sig`, art.signature);
                files.push(`${rel}.sig`);
                signed = true;
              }
            }
      // SHA256SUMS.sig is there when publish signed (apply.ts signs every file and each list).
      if (!signed) {
        const probe = await get(fetcher, at(`${dir}/SHA256SUMS.sig`), true);
        await probe?.body?.cancel();
        signed = probe !== undefined;
      }
      const sig = (rel: string) => (signed ? [rel, `${rel}.sig`] : [rel]);
      const all = await text(`${dir}/SHA256SUMS`);
      if (all === undefined) throw new PipelineError(`${at(`${dir}/SHA256SUMS`)}: HTTP 404; not bundled`);
      files.push(...sig(`${dir}/SHA256SUMS`));
      for (const arch of Object.keys(release.architectures)) {
        const list = `${dir}/${arch}/SHA256SUMS`;
        const listed = await text(list);
        if (listed === undefined) throw new PipelineError(`${at(list)}: HTTP 404; not bundled`);
        files.push(...sig(list));
        // Every file of the arch, by name: artifacts at their location, the rest on the site.
        const { sums, problems } = parseSums(listed);
        if (problems.length) throw new PipelineError(`${at(list)}: ${problems.join('; ')}; not bundled`);
        for (const [file, sha256] of sums) {
          const rel = `${dir}/${arch}/${file}`;
          name(rel, named.get(rel)?.url ?? at(rel), sha256);
          files.push(...sig(rel));
        }
      }
      return [...new Set(files)].sort();
    },
    signatureFiles: async (repository, digests) => {
      // containers/image reads <lookaside>/<repository path>@sha256=<hex>/signature-N for N = 1,
      // 2, ... and stops at the first 404 (docker/docker_image_src.go:516-534, :568-572;
      // the URL: docker/registries_d.go:191, :301 @df7e80d2d198). So does this.
      const out: string[] = [];
      for (const d of [...new Set(digests)]) {
        const dir = lookasidePath('', repository, d).replace(/^\/+/, '');
        for (let n = 1; ; n++) {
          if (n > MAX_SIGNATURES)
            throw new PipelineError(
              `${at(`signatures/${dir}`)}/: signature-1 to signature-${MAX_SIGNATURES} all there, which containers/image refuses (it reads no more); not bundled`,
            );
          const res = await get(fetcher, at(`signatures/${dir}/signature-${n}`), true);
          if (!res) break;
          await res.body?.cancel();
          out.push(`${dir}/signature-${n}`);
        }
      }
      return out;
    },
    copy: async (rel, dest) => {
      const n = named.get(rel);
      await download(fetcher, n?.url ?? at(rel), dest, n?.sha256 ?? []);
    },
  };
}
