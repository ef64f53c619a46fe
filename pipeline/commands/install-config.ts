import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { loadProject, projectPaths, resolveStream } from '../config/index.ts';
import { DataError, ExitCode, UnavailableError, UsageError } from '../errors.ts';
import { sha256Hex } from '../files.ts';
import { renderIgnition, serializeIgnition } from '../plan/ignition.ts';
import { joinBaseProblem } from '../plan/zincati.ts';
import { profileFromArgs } from './ignition.ts';
import { followedTrust } from './ignition-glue.ts';
import { str } from './publish.ts';
import type { Command } from './types.ts';

/**
 * coreos-installer URL-joins `<stream>.json` onto --stream-base-url (coreos/coreos-installer
 * src/source.rs:435-440 @bee45001, rust-url's join): without a trailing `/` the last segment
 * is replaced, so `.../streams` fetches `.../stable.json`. Refused here rather than printed.
 */
export function streamBaseUrlProblem(url: string, stream = 'stable'): string | undefined {
  const problem = joinBaseProblem(
    url,
    'coreos-installer joins <stream>.json onto it (coreos/coreos-installer src/source.rs:435-440)',
  );
  return problem?.startsWith('must end with')
    ? `${problem}: ${url} would fetch ${new URL(`${stream}.json`, url).href}; give ${url}/`
    : problem;
}

/** A word for sh: as it is when plain, else single-quoted. */
export const shq = (s: string) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
const line = (words: string[]) => words.map(shq).join(' ');

/** The stream's metal disk entry coreos-installer would pick on this sector size. */
export interface DiskEntry {
  format: string;
  location: string;
  signature?: string;
  sha256?: string;
}

/**
 * The disk of `arch` a `coreos-installer install` would take from stream metadata on a disk
 * with `sectorSize`-byte sectors: `metal` `4k.raw.xz` on 4096, else `raw.xz`
 * (src/install.rs:165-180 @bee45001).
 */
export function pickDisk(doc: unknown, arch: string, sectorSize: number): DiskEntry | undefined {
  const format = sectorSize === 4096 ? '4k.raw.xz' : 'raw.xz';
  const d = (
    doc as {
      architectures?: Record<
        string,
        { artifacts?: Record<string, { formats?: Record<string, { disk?: Omit<DiskEntry, 'format'> }> }> }
      >;
    }
  )?.architectures?.[arch]?.artifacts?.metal?.formats?.[format]?.disk;
  return d && typeof d.location === 'string' ? { format, ...d } : undefined;
}

export interface InstallLines {
  stock: string[];
  disk: string[];
}

/** The shell lines of each path (pure). */
export function installLines(o: {
  device: string;
  ignition: string;
  fcosStream: string;
  follows: string;
  disk: DiskEntry & { signature: string };
  keyFile: string;
}): InstallLines {
  const name = basename(new URL(o.disk.location).pathname);
  const sig = `${name}.gpgsig`;
  return {
    stock: [
      `# Stock Fedora CoreOS (${o.fcosStream}), its signature checked by coreos-installer with Fedora's keys; on first boot`,
      `# the Ignition sets up the sensor and rebases onto ${o.follows}.`,
      line([
        'sudo',
        'coreos-installer',
        'install',
        o.device,
        '--stream',
        o.fcosStream,
        '--ignition-file',
        o.ignition,
      ]),
    ],
    disk: [
      '# Our metal disk: verified with our key before coreos-installer sees it. The signature is saved',
      `# as ${sig}: coreos-installer reads <file>.sig and checks it only against its built-in`,
      '# keys, which refuse ours; --insecure lets it take a file with no .sig, never a bad one.',
      'set -e',
      line(['curl', '-fL', '-o', name, o.disk.location]),
      line(['curl', '-fL', '-o', sig, o.disk.signature]),
      'export GNUPGHOME="$(mktemp -d)"',
      line(['gpg', '--batch', '--import', o.keyFile]),
      line(['gpg', '--batch', '--verify', sig, name]),
      line([
        'sudo',
        'coreos-installer',
        'install',
        o.device,
        '--image-file',
        name,
        '--insecure',
        '--ignition-file',
        o.ignition,
      ]),
    ],
  };
}

export const installConfig: Command = {
  name: 'install-config',
  summary: 'write a profile Ignition and print the exact coreos-installer lines for each install path',
  usage: `
Usage: rock-image install-config --profile P --stream S [--ssh-key FILE]... [options]

Writes DIR/<profile>.ign (as 'rock-image ignition --profile P --ssh-key FILE'), reads the
stream's metadata at <stream-base-url><S>.json, and prints, per install path, the shell lines a
site runs in the Fedora CoreOS live environment (which has coreos-installer, curl and gpg):
  1. stock Fedora CoreOS by coreos-installer, then the Ignition rebases onto the profile's image;
  2. our metal disk (raw.xz, or 4k.raw.xz with --sector-size 4096): downloaded, checked with
     gpg --verify against our key, then 'coreos-installer install --image-file F --insecure'.
Refuses a stream whose disk has no signature (a publish without --sign-by): nothing is written.

Options:
  --profile P            profile name under manifests/profiles, or a YAML path (required)
  --stream S             stream (required)
  --ssh-key FILE         public keys for the admin user; may be repeated
  --stream-base-url URL  where streams/<S>.json is, ending with '/' (default: the stream's
                         publish.site-url + /streams/)
  --key FILE             our public key (default: the stream's publish.trust.gpg-key)
  --arch A               x86_64 or aarch64 (default: x86_64)
  --device DEV           the disk to install to (default: /dev/sda)
  --sector-size N        the disk's logical sector size, 512 or 4096 ('blockdev --getss DEV';
                         default: 512)
  --output-dir DIR       where the Ignition goes (default: .)
`,
  options: {
    profile: { type: 'string' },
    stream: { type: 'string' },
    'ssh-key': { type: 'string', multiple: true },
    'stream-base-url': { type: 'string' },
    key: { type: 'string' },
    arch: { type: 'string', arches: true },
    device: { type: 'string' },
    'sector-size': { type: 'string' },
    'output-dir': { type: 'string' },
  },
  async run(ctx, v) {
    const profileArg = str(v, 'profile');
    const stream = str(v, 'stream');
    if (!profileArg || !stream) throw new UsageError('--profile and --stream are required (see --help)');
    const arch = str(v, 'arch') ?? 'x86_64';
    if (arch.includes(',')) throw new UsageError(`--arch: one arch, not ${arch}`);
    const sector = str(v, 'sector-size') ?? '512';
    if (sector !== '512' && sector !== '4096')
      throw new UsageError(
        `--sector-size: 512 or 4096 (what coreos-installer has images for), not ${sector}`,
      );
    const device = str(v, 'device') ?? '/dev/sda';
    if (!device.startsWith('/dev/')) throw new UsageError(`--device: a /dev path, not ${device}`);
    const project = loadProject(projectPaths(ctx.root));
    const cfg = resolveStream(project, stream, ctx.root).stream;
    const given = str(v, 'stream-base-url');
    const base = given ?? (cfg.publish.siteUrl ? `${cfg.publish.siteUrl}/streams/` : undefined);
    if (!base)
      throw new UsageError(`--stream-base-url is required (stream ${stream} has no publish.site-url)`);
    const problem = streamBaseUrlProblem(base, stream);
    if (problem) throw new UsageError(`--stream-base-url ${problem}`);
    const keyFile = str(v, 'key') ? resolve(ctx.cwd, str(v, 'key')!) : cfg.publish.trust?.gpgKey.source;
    if (!keyFile)
      throw new UsageError(
        `--key is required (stream ${stream} ${cfg.publish.trust ? 'names two keys, a rotation: give the one the disk is signed with' : 'has no publish.trust.gpg-key'})`,
      );
    if (!existsSync(keyFile)) throw new UsageError(`--key: no such file ${keyFile}`);
    const profile = profileFromArgs(ctx, profileArg, (v['ssh-key'] as string[] | undefined) ?? []);
    // As `rock-image ignition` renders it: our trust files first, then the rebase (trust-first).
    const text = serializeIgnition(
      renderIgnition(profile, { trust: followedTrust(project, profile, ctx.root) }),
    );

    const url = new URL(`${stream}.json`, base).href;
    let doc: unknown;
    try {
      const r = await fetch(url);
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      doc = await r.json();
    } catch (e) {
      throw new UnavailableError(`${url}: cannot read the stream metadata: ${(e as Error).message}`);
    }
    const disk = pickDisk(doc, arch, Number(sector));
    if (!disk)
      throw new DataError(
        `${url}: no ${arch} metal ${sector === '4096' ? '4k.raw.xz' : 'raw.xz'} disk in the stream; nothing written`,
      );
    if (!disk.signature)
      throw new DataError(
        `${url}: the ${arch} metal ${disk.format} disk has no signature (published without --sign-by); a sensor is not installed from an unverified disk; nothing written`,
      );

    const dir = resolve(ctx.cwd, str(v, 'output-dir') ?? '.');
    const out = join(dir, `${profile.name}.ign`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(`${out}.tmp`, text);
    renameSync(`${out}.tmp`, out);
    ctx.log.info(`wrote ${out} (profile ${profile.name}, sha256 ${sha256Hex(text)})`);
    const lines = installLines({
      device,
      ignition: out,
      fcosStream: cfg.base.tag || stream,
      follows: profile.follows,
      disk: { ...disk, signature: disk.signature },
      keyFile,
    });
    ctx.stdout.write(
      [
        `# Path 1 (default): stock Fedora CoreOS, then ${profile.name}.ign`,
        ...lines.stock,
        '',
        `# Path 2: our ${arch} metal disk (${disk.format}), from ${url}`,
        ...lines.disk,
        '',
      ].join('\n'),
    );
    return ExitCode.ok;
  },
};
