// What stock coreos-installer does with a stream's metadata and artifacts, written from its
// source (coreos/coreos-installer @bee45001, cited per rule as path:line) and run over HTTP:
// where `--stream-base-url` + `--stream` leads, which format `install` and `download` choose,
// how it reads the stream document, fetches an artifact and its signature, and how it verifies
// that signature (real gpg, the same commands, against the keys compiled into it: its
// src/signing-keys.asc at that commit). coreos-installer itself does not run here (not
// packaged for Debian), so this is the stand-in; every rule it applies is one of the cited
// lines, not ours.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeBytes } from './published.ts';
import { needTool, sh, shResult } from './tools.ts';
import { file } from './upstream.ts';

/** The coreos-installer source this client follows. */
export const COREOS_INSTALLER = {
  repo: 'coreos/coreos-installer',
  commit: 'bee4500186302e3773afe969ecabb441f2d77279',
};

/**
 * A file of that source, as committed: from a git mirror (ROCK_UPSTREAM_GIT) or GitHub, as the
 * upstream suites read theirs (test/world/upstream.ts), so only upstream-*.test.ts call it.
 */
export const upstreamFile = (path: string) => file(COREOS_INSTALLER.repo, COREOS_INSTALLER.commit, path);

/** An error coreos-installer would end with (its anyhow context chain, outermost first). */
export class InstallerError extends Error {}

/** src/source.rs:33-34: the stream base URL without --stream-base-url. */
export const DEFAULT_STREAM_BASE_URL = 'https://builds.coreos.fedoraproject.org/streams/';

/**
 * src/source.rs:435-440 `build_stream_url`: `base.join("<stream>.json")`, rust-url's join, i.e.
 * WHATWG URL resolution (what `new URL(rel, base)` does): without a trailing `/` the base's last
 * segment is replaced (`.../streams` + `stable.json` is `.../stable.json`).
 */
export const streamUrl = (stream: string, base: string = DEFAULT_STREAM_BASE_URL) =>
  new URL(`${stream}.json`, base).href;

/**
 * src/install.rs:165-176: the format `install --stream` asks for on a disk with `sectorSize`
 * logical sectors: 4096 -> `4k.raw.xz`, 512 -> `raw.xz`, anything else -> `raw.xz` with a
 * warning; always platform `metal` (install.rs:180).
 */
export function installFormat(sectorSize: number): { format: string; warning?: string } {
  if (sectorSize === 4096) return { format: '4k.raw.xz' };
  if (sectorSize === 512) return { format: 'raw.xz' };
  return {
    format: 'raw.xz',
    warning: `Found non-standard sector size ${sectorSize} for the disk, assuming 512b-compatible`,
  };
}

/** src/cmdline/mod.rs:208-221: `download` defaults: stream stable, platform metal, format raw.xz. */
export const DOWNLOAD_DEFAULTS = { stream: 'stable', platform: 'metal', format: 'raw.xz' };

interface Artifact {
  location: string;
  signature: string;
}
type Stream = Record<string, Record<string, Record<string, Record<string, Artifact>>>>;

/**
 * src/source.rs:443-455 and 512-531: the stream document decoded with serde into
 * `architectures.<arch>.artifacts.<platform>.formats.<format>.<artifact>` = `{location: String,
 * signature: String}`: both are required, in every artifact of the document (serde decodes it
 * whole), so one missing field fails the whole decode ("decoding stream metadata").
 */
export function decodeStream(text: string): Stream {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new InstallerError(`decoding stream metadata: ${(e as Error).message}`);
  }
  const obj = (v: unknown, what: string): Record<string, unknown> => {
    if (!v || typeof v !== 'object' || Array.isArray(v))
      throw new InstallerError(`decoding stream metadata: ${what}: invalid type, expected a map`);
    return v as Record<string, unknown>;
  };
  const field = (v: Record<string, unknown>, k: string) => {
    if (!(k in v)) throw new InstallerError(`decoding stream metadata: missing field \`${k}\``);
    return v[k];
  };
  const out: Stream = {};
  for (const [arch, a] of Object.entries(obj(field(obj(doc, 'stream'), 'architectures'), 'architectures'))) {
    out[arch] = {};
    for (const [platform, p] of Object.entries(obj(field(obj(a, arch), 'artifacts'), 'artifacts'))) {
      out[arch]![platform] = {};
      for (const [format, f] of Object.entries(obj(field(obj(p, platform), 'formats'), 'formats'))) {
        out[arch]![platform]![format] = {};
        for (const [name, art] of Object.entries(obj(f, format))) {
          const x = obj(art, name);
          const location = field(x, 'location');
          const signature = field(x, 'signature');
          if (typeof location !== 'string' || typeof signature !== 'string')
            throw new InstallerError('decoding stream metadata: invalid type: expected a string');
          out[arch]![platform]![format]![name] = { location, signature };
        }
      }
    }
  }
  return out;
}

/** What one source yields (src/source.rs:85-91 ImageSource). */
export interface Source {
  artifactType: string;
  bytes: Buffer;
  /** Absent when it could not be read or fetched: "missing". */
  signature?: Buffer;
  /** src/source.rs:207-216: the last path segment of the final URL (after redirects). */
  filename: string;
  log: string[];
}

/**
 * src/source.rs:171-224 UrlLocation: the signature is fetched first and any failure makes it
 * missing (a message, not an error); then the image, whose fetch must answer 200; reqwest
 * follows redirects. http_get fails on an error status (source.rs:466-505).
 */
export async function urlSource(imageUrl: string, sigUrl: string, artifactType = 'disk'): Promise<Source> {
  const log: string[] = [];
  let signature: Buffer | undefined;
  const sig = await fetch(sigUrl);
  if (sig.ok) signature = Buffer.from(await sig.arrayBuffer());
  else
    log.push(`Failed to fetch signature: fetching signature URL: fetching '${sigUrl}': HTTP ${sig.status}`);
  const img = await fetch(imageUrl);
  if (!img.ok)
    throw new InstallerError(`fetching image URL: fetching '${imageUrl}': HTTP status ${img.status}`);
  const bytes = Buffer.from(await img.arrayBuffer());
  const filename = new URL(img.url).pathname.split('/').pop() ?? '';
  return { artifactType, bytes, signature, filename, log };
}

/**
 * src/source.rs:93-152 FileLocation (`install --image-file F`): F, and `F.sig` when it can be
 * read, else the signature is missing.
 */
export function fileSource(path: string): Source {
  const log: string[] = [];
  let signature: Buffer | undefined;
  try {
    signature = readFileSync(`${path}.sig`);
  } catch (e) {
    log.push(`Couldn't read signature file: ${(e as Error).message}`);
  }
  return {
    artifactType: 'disk',
    bytes: readFileSync(path),
    signature,
    filename: path.split('/').pop()!,
    log,
  };
}

/**
 * src/source.rs:268-301 StreamLocation: the stream fetched and decoded, descended by arch,
 * platform and format (else "couldn't find ..."), each artifact fetched as a UrlLocation with
 * the stream's signature URL; sorted by artifact type.
 */
export async function streamSources(
  base: string | undefined,
  stream: string,
  arch: string,
  platform: string,
  format: string,
): Promise<Source[]> {
  const url = streamUrl(stream, base);
  const r = await fetch(url);
  if (!r.ok) throw new InstallerError(`fetching stream metadata: fetching '${url}': HTTP status ${r.status}`);
  const doc = decodeStream(await r.text());
  const artifacts = doc[arch]?.[platform]?.[format];
  if (!artifacts)
    throw new InstallerError(
      `couldn't find architecture ${arch}, platform ${platform}, format ${format} in stream metadata`,
    );
  const out: Source[] = [];
  for (const [type, a] of Object.entries(artifacts)) out.push(await urlSource(a.location, a.signature, type));
  return out.sort((x, y) => x.artifactType.localeCompare(y.artifactType));
}

/**
 * The signature rule, src/download.rs:55-63 and src/install.rs:195-200: a missing signature
 * is an error unless --insecure ("Signature not found; skipping verification as requested").
 * A present one is always verified (src/download.rs:246-302: VerifyReader wraps every read;
 * verify() after the copy), whatever --insecure says (cmdline/install.rs:222-225: "Does not
 * allow an existing signature to be invalid").
 */
export async function checkSignature(source: Source, insecure: boolean): Promise<string[]> {
  if (source.signature === undefined) {
    if (!insecure) throw new InstallerError('--insecure not specified and signature not found');
    return ['Signature not found; skipping verification as requested'];
  }
  return [await gpgVerifyBuiltin(source.signature, source.bytes)];
}

/**
 * src/io/verify.rs:98-235, 240-270: a temporary GNUPGHOME (0700), `gpg --batch --quiet --import`
 * of the keys compiled in (src/signing-keys.asc, verify.rs:113), `gpg --batch --check-trustdb
 * --trusted-key ID` for each key listed, then `gpg --batch --verify SIG -` on the image; a
 * non-zero exit is an error. No option adds a key.
 */
export async function gpgVerifyBuiltin(signature: Buffer, data: Buffer): Promise<string> {
  needTool('gpg');
  const builtin = await upstreamFile('src/signing-keys.asc');
  const home = mkdtempSync(join(tmpdir(), 'coreos-installer-'));
  try {
    const env = { GNUPGHOME: home };
    const keys = join(home, 'keys.asc');
    writeFileSync(keys, builtin);
    sh('gpg', ['--homedir', home, '--batch', '--quiet', '--import', keys], { env });
    const ids = sh('gpg', ['--homedir', home, '--batch', '--list-keys', '--with-colons'], { env })
      .split('\n')
      .map((l) => l.split(':'))
      .filter((f) => f[0] === 'pub' && f.length >= 5)
      .flatMap((f) => ['--trusted-key', f[4]!]);
    const t = shResult('gpg', ['--homedir', home, '--batch', '--check-trustdb', ...ids], { env });
    if (t.code !== 0) throw new InstallerError(`gpg --check-trustdb failed: ${t.stderr}`);
    writeFileSync(join(home, 'signature'), signature);
    const v = pipeBytes(
      'gpg',
      ['--homedir', home, '--batch', '--verify', join(home, 'signature'), '-'],
      data,
    );
    if (v.code !== 0) throw new InstallerError(`gpg signature verification failed:\n${v.stderr.trim()}`);
    return v.stderr.trim();
  } finally {
    shResult('gpgconf', ['--homedir', home, '--kill', 'all']);
    rmSync(home, { recursive: true, force: true });
  }
}

/** `coreos-installer download [--stream-base-url B] -s S -a A -p P -f F [--insecure]` (download.rs:32-63). */
export async function download(o: {
  streamBaseUrl?: string;
  stream?: string;
  arch: string;
  platform?: string;
  format?: string;
  insecure?: boolean;
}): Promise<Source[]> {
  const sources = await streamSources(
    o.streamBaseUrl,
    o.stream ?? DOWNLOAD_DEFAULTS.stream,
    o.arch,
    o.platform ?? DOWNLOAD_DEFAULTS.platform,
    o.format ?? DOWNLOAD_DEFAULTS.format,
  );
  if (sources.length === 0) throw new InstallerError('no artifacts found');
  for (const s of sources) s.log.push(...(await checkSignature(s, Boolean(o.insecure))));
  return sources;
}

/**
 * `coreos-installer install DEV` up to the write (src/install.rs:142-200): `--image-file F`
 * (FileLocation), else `--stream S` with `--stream-base-url B` (format by sector size); a
 * single artifact; the signature rule. Returns the source that would be written to the disk.
 */
export async function install(o: {
  sectorSize: number;
  imageFile?: string;
  stream?: string;
  streamBaseUrl?: string;
  arch: string;
  insecure?: boolean;
}): Promise<Source & { format?: string }> {
  let sources: Source[];
  let format: string | undefined;
  const log: string[] = [];
  if (o.imageFile) sources = [fileSource(o.imageFile)];
  else {
    const f = installFormat(o.sectorSize);
    format = f.format;
    if (f.warning) log.push(f.warning);
    sources = await streamSources(o.streamBaseUrl, o.stream ?? 'stable', o.arch, 'metal', f.format);
  }
  const source = sources.pop();
  if (!source) throw new InstallerError('no artifacts found');
  if (sources.length) throw new InstallerError('found multiple artifacts');
  source.log.unshift(...log);
  source.log.push(...(await checkSignature(source, Boolean(o.insecure))));
  return { ...source, format };
}
