// A published release to check, and the check: builds whose disks are real xz files (so a
// listed uncompressed-sha256 can be recomputed), and a walk over every URL that a stream's
// metadata documents name, fetched over HTTP as a client would (redirects followed), each
// compared with what the documents say: sha256, uncompressed-sha256 (xz -dc), and the detached
// signature checked by gpg against a given public key.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGitHub } from '../../pipeline/exec/github.ts';
import { createLogger } from '../../pipeline/log.ts';
import { applyPlan } from '../../pipeline/publish/apply.ts';
import { readExisting } from '../../pipeline/publish/read.ts';
import {
  type ArchBuild,
  type ArtifactHost,
  buildDir,
  planSite,
  type SitePlan,
} from '../../pipeline/publish/site.ts';
import type { FakeGitHub } from './github.ts';
import type { TestKey } from './gpg.ts';
import { needTool, sh, shResult } from './tools.ts';

/** Runs a tool with bytes in and bytes out (tools.ts sh/shResult carry text only). */
export function pipeBytes(
  cmd: string,
  args: string[],
  input: Buffer,
): { code: number; stdout: Buffer; stderr: string } {
  const r = spawnSync(cmd, args, { input, maxBuffer: 256 << 20 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr?.toString('utf8') ?? String(r.error) };
}

export const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/**
 * A build of `version` for `arch` in `root/builds/<version>/<arch>`: the OCI archive, metal and
 * metal4k raw.xz, qemu qcow2.xz, live ISO and PXE files, small but real (the disks are xz of a
 * few KiB of per-file bytes), marked as made by the coreos backend.
 */
export function xzBuild(root: string, version: string, arch: 'x86_64' | 'aarch64'): ArchBuild {
  needTool('xz');
  const dir = join(root, 'builds', version, arch);
  mkdirSync(dir, { recursive: true });
  const images: ArchBuild['meta']['images'] = {};
  const n = `rocknsm-coreos-${version}`;
  const add = (key: string, path: string, xz = false) => {
    const raw = Buffer.alloc(4096 + key.length * 512, `${key} ${version} ${arch}\n`);
    const bytes = xz ? pipeBytes('xz', ['-c', '-T1'], raw).stdout : raw;
    writeFileSync(join(dir, path), bytes);
    images[key] = {
      path,
      sha256: sha(bytes),
      size: bytes.length,
      ...(xz && { 'uncompressed-sha256': sha(raw), 'uncompressed-size': raw.length }),
    };
  };
  add('ostree', `${n}-ostree.${arch}.ociarchive`);
  add('metal', `${n}-metal.${arch}.raw.xz`, true);
  add('metal4k', `${n}-metal4k.${arch}.raw.xz`, true);
  add('qemu', `${n}-qemu.${arch}.qcow2.xz`, true);
  add('live-iso', `${n}-live-iso.${arch}.iso`);
  add('live-kernel', `${n}-live-kernel.${arch}`);
  add('live-initramfs', `${n}-live-initramfs.${arch}.img`);
  add('live-rootfs', `${n}-live-rootfs.${arch}.img`);
  const meta = {
    buildid: version,
    name: 'rocknsm-coreos',
    'coreos-assembler.basearch': arch,
    images,
    'rocknsm.image-digest': `sha256:${sha(`manifest ${version} ${arch}`)}`,
    'rocknsm.artifact-backends': Object.fromEntries(Object.keys(images).map((k) => [k, 'coreos'])),
  };
  writeFileSync(join(dir, 'meta.json'), `${JSON.stringify(meta, null, 2)}\n`);
  return { arch, dir, meta };
}

/**
 * Fetches a URL as a download client does: redirects followed; the bytes, or the HTTP status. A
 * connection that fails (node's `fetch failed`: once seen against the local server at a load of
 * 16) is tried again, up to three times, as a download client retries; an HTTP status is not.
 */
export async function get(url: string): Promise<{ status: number; bytes: Buffer; finalUrl: string }> {
  for (let attempt = 1; ; attempt++) {
    try {
      const r = await fetch(url, { redirect: 'follow' });
      return { status: r.status, bytes: Buffer.from(await r.arrayBuffer()), finalUrl: r.url };
    } catch (e) {
      if (attempt >= 3) throw e;
      await new Promise((r) => setTimeout(r, 200 * attempt));
    }
  }
}

/** `gpg --verify SIG FILE` in a fresh keyring holding only `publicKey`: whether it is good. */
export function gpgVerify(publicKey: string, sig: Buffer, data: Buffer): { good: boolean; output: string } {
  needTool('gpg');
  const home = mkdtempSync(join(tmpdir(), 'rock-verify-'));
  try {
    const env = { GNUPGHOME: home };
    sh('gpg', ['--batch', '--quiet', '--import', publicKey], { env });
    writeFileSync(join(home, 'file'), data);
    writeFileSync(join(home, 'file.sig'), sig);
    const r = shResult(
      'gpg',
      ['--batch', '--status-fd', '1', '--verify', join(home, 'file.sig'), join(home, 'file')],
      {
        env,
      },
    );
    return { good: r.code === 0 && /^\[GNUPG:\] VALIDSIG /m.test(r.stdout), output: r.stdout + r.stderr };
  } finally {
    sh('gpgconf', ['--homedir', home, '--kill', 'all']);
    rmSync(home, { recursive: true, force: true });
  }
}

export interface Walked {
  /** Every URL named, with where it was named (document and JSON pointer). */
  urls: { url: string; doc: string; at: string }[];
  /** Artifacts checked (objects with a location). */
  artifacts: number;
  /** Signatures verified good. */
  signatures: number;
  problems: string[];
}

interface ArtifactEntry {
  location: string;
  signature?: string;
  sha256?: string;
  'uncompressed-sha256'?: string;
}

/**
 * Walks streams/<stream>.json, releases.json and every release.json it names (all under
 * `siteUrl`): every string that is an http(s) URL must answer 200; every artifact entry's
 * location must have its sha256 (and the sha256 of `xz -dc` of it, where uncompressed-sha256
 * is listed); every signature must be a good one by `publicKey`. Returns what it found wrong.
 */
export async function walkMetadata(siteUrl: string, stream: string, publicKey: string): Promise<Walked> {
  const out: Walked = { urls: [], artifacts: 0, signatures: 0, problems: [] };
  const docs: { name: string; url: string }[] = [
    { name: `streams/${stream}.json`, url: `${siteUrl}/streams/${stream}.json` },
    { name: `prod/streams/${stream}/releases.json`, url: `${siteUrl}/prod/streams/${stream}/releases.json` },
  ];
  const cache = new Map<string, Promise<{ status: number; bytes: Buffer; finalUrl: string }>>();
  const fetchOnce = (u: string) => {
    if (!cache.has(u)) cache.set(u, get(u));
    return cache.get(u)!;
  };
  for (let i = 0; i < docs.length; i++) {
    const d = docs[i]!;
    const r = await fetchOnce(d.url);
    if (r.status !== 200) {
      out.problems.push(`${d.name}: ${d.url} answers ${r.status}`);
      continue;
    }
    const json = JSON.parse(r.bytes.toString('utf8'));
    const visit = async (v: unknown, at: string): Promise<void> => {
      if (typeof v === 'string') {
        if (!/^https?:\/\//.test(v)) return;
        out.urls.push({ url: v, doc: d.name, at });
        const got = await fetchOnce(v);
        if (got.status !== 200) out.problems.push(`${d.name} ${at}: ${v} answers ${got.status}`);
        else if (/\/release\.json$/.test(v) && !docs.some((x) => x.url === v))
          docs.push({ name: new URL(v).pathname.replace(/^\//, ''), url: v });
        return;
      }
      if (!v || typeof v !== 'object') return;
      const entry = v as ArtifactEntry;
      if (typeof entry.location === 'string') await checkArtifact(entry, `${d.name} ${at}`);
      for (const [k, x] of Object.entries(v)) await visit(x, `${at}/${k}`);
    };
    const checkArtifact = async (a: ArtifactEntry, where: string) => {
      out.artifacts++;
      const file = await fetchOnce(a.location);
      if (file.status !== 200) return; // reported by the URL walk
      if (a.sha256 === undefined) out.problems.push(`${where}: no sha256`);
      else if (sha(file.bytes) !== a.sha256)
        out.problems.push(`${where}: ${a.location} has sha256 ${sha(file.bytes)}, listed ${a.sha256}`);
      if (a['uncompressed-sha256'] !== undefined) {
        const x = pipeBytes('xz', ['-dc'], file.bytes);
        const got = x.code === 0 ? sha(x.stdout) : '';
        if (x.code !== 0 || got !== a['uncompressed-sha256'])
          out.problems.push(
            `${where}: ${a.location} uncompressed has sha256 ${got || `(xz failed: ${x.stderr.trim()})`}, listed ${a['uncompressed-sha256']}`,
          );
      }
      if (a.signature !== undefined) {
        const sig = await fetchOnce(a.signature);
        if (sig.status !== 200) return;
        const v = gpgVerify(publicKey, sig.bytes, file.bytes);
        if (v.good) out.signatures++;
        else
          out.problems.push(`${where}: ${a.signature} is not a good signature of ${a.location} by our key`);
      }
    };
    await visit(json, '');
  }
  return out;
}

/**
 * Publishes `version` of `stream` (xzBuild for both arches under `work/out`) into `siteDir`,
 * served at `siteUrl`: as `rock-image publish` plans and applies it, minus the images: signed
 * by `key` when given, with a GitHub release on `github` (the double) when given.
 */
export async function publishXz(o: {
  work: string;
  siteDir: string;
  siteUrl: string;
  stream: string;
  version: string;
  key?: TestKey;
  github?: FakeGitHub;
  host?: ArtifactHost;
  now: number;
}): Promise<SitePlan> {
  const builds = (['x86_64', 'aarch64'] as const).map((a) => xzBuild(join(o.work, 'out'), o.version, a));
  const dests = builds.flatMap((b) =>
    Object.values(b.meta.images).map((i) => `${buildDir(o.stream, o.version)}/${b.arch}/${i.path}`),
  );
  const plan = planSite({
    stream: o.stream,
    version: o.version,
    requireArches: ['x86_64', 'aarch64'],
    builds,
    baseUrl: o.siteUrl,
    imageRepo: 'ghcr.io/rocknsm/rocknsm-coreos',
    existing: await readExisting(o.siteDir, o.stream, dests),
    now: o.now,
    signed: Boolean(o.key),
    artifactHost: o.host,
  });
  const gh = o.github;
  await applyPlan({
    plan,
    siteDir: o.siteDir,
    ...(o.key && { signBy: o.key.fingerprint, gpgHome: o.key.home }),
    ...(gh && {
      github: {
        gh: createGitHub({
          token: gh.token,
          repo: `${gh.owner}/${gh.repo}`,
          baseUrl: gh.url,
          writeIntervalMs: 0,
          retryBaseMs: 10,
        }),
        spec: { tag: `v${o.version}`, name: o.version, body: '' },
      },
    }),
    log: createLogger({ mode: 'plain', out: { write: () => true } }),
  });
  return plan;
}
