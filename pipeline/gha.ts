// GitHub Actions glue for the nightly and release workflows: the per-arch leg matrix, the
// "did anything change" decision, merging the legs' builds.json files, and the job summary.
// Everything here is pure except the two appenders ($GITHUB_OUTPUT, $GITHUB_STEP_SUMMARY) and
// the meta.json reader, so the workflows' logic is tested without GitHub.
import { randomBytes } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import type { Arch } from './config/index.ts';
import { describeSigning } from './plan/trust.ts';
import type { BuildMeta, BuildsJson } from './records.ts';

/** GitHub-hosted runner that builds each arch natively (no emulation). */
export const runners: Record<Arch, string> = { x86_64: 'ubuntu-24.04', aarch64: 'ubuntu-24.04-arm' };

/** `strategy.matrix` of the build legs: one native runner per arch. */
export function legMatrix(arches: readonly Arch[]): { include: { arch: Arch; runner: string }[] } {
  return { include: arches.map((arch) => ({ arch, runner: runners[arch] })) };
}

export interface ArchDecision {
  arch: string;
  current: string;
  previous?: string;
  changed: boolean;
}

/**
 * Whether a stream needs a new build: the same rule as `rock-image build` (the input hash, which
 * covers the base digest, compared with the newest build's), taken once for every arch so the
 * legs build one version together or not at all.
 */
export function decide(
  hashes: Record<string, string>,
  builds: BuildsJson,
  meta: (id: string, arch: string) => BuildMeta | undefined,
): { changed: boolean; previous?: string; arches: ArchDecision[] } {
  const last = builds.builds[0];
  const arches = Object.entries(hashes).map(([arch, current]) => {
    const previous = last ? meta(last.id, arch)?.['rocknsm.input-hash'] : undefined;
    return { arch, current, previous, changed: previous !== current };
  });
  return { changed: arches.some((a) => a.changed), previous: last?.id, arches };
}

/** `key=value` lines for $GITHUB_OUTPUT; multi-line values use the heredoc form. */
export function formatOutputs(outputs: Record<string, string>, delimiter = randomDelimiter()): string {
  return Object.entries(outputs)
    .map(([k, v]) => (v.includes('\n') ? `${k}<<${delimiter}\n${v}\n${delimiter}\n` : `${k}=${v}\n`))
    .join('');
}

function randomDelimiter(): string {
  return `ghadelim_${randomBytes(8).toString('hex')}`;
}

/** Appends step outputs when running under Actions; a no-op elsewhere. */
export function writeOutputs(env: NodeJS.ProcessEnv, outputs: Record<string, string>): void {
  if (env.GITHUB_OUTPUT) appendFileSync(env.GITHUB_OUTPUT, formatOutputs(outputs));
}

/** Appends Markdown to the job summary when running under Actions; a no-op elsewhere. */
export function writeSummary(env: NodeJS.ProcessEnv, markdown: string): void {
  if (env.GITHUB_STEP_SUMMARY)
    appendFileSync(env.GITHUB_STEP_SUMMARY, markdown.endsWith('\n') ? markdown : `${markdown}\n`);
}

const short = (s: string | undefined, n = 19) => (s ? (s.length > n ? `${s.slice(0, n)}…` : s) : '—');

/** Bytes as KiB/MiB/GiB with one decimal. */
export function humanSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** Markdown for a stream whose inputs did not change: nothing is built or published. */
export function renderUnchanged(
  stream: string,
  previous: string | undefined,
  arches: ArchDecision[],
): string {
  return [
    `### ${stream}: unchanged since ${previous ?? '(no build)'}`,
    '',
    'Inputs and base digests equal the last published build; nothing was built or published.',
    '',
    '| arch | input hash |',
    '| --- | --- |',
    ...arches.map((a) => `| ${a.arch} | \`${short(a.current, 16)}\` |`),
    '',
  ].join('\n');
}

/** What the summary reads of a meta.json: its identity, and whatever else it has. */
export type SummaryMeta = Pick<BuildMeta, 'buildid' | 'coreos-assembler.basearch'> & Partial<BuildMeta>;

export interface SummaryInput {
  stream: string;
  version: string;
  /** Meta of the new build per arch. */
  current: SummaryMeta[];
  /** The previous build, when one is known. */
  previous?: { version: string; metas: SummaryMeta[] };
}

/**
 * The job summary of one stream's release: version, per-arch image digest and base, every file
 * with its size, and what changed since the previous build (base digest, input hash, sizes).
 */
export function renderSummary(input: SummaryInput): string {
  const lines = [`### ${input.stream} ${input.version}`, ''];
  const signing = input.current.find((m) => m['rocknsm.signing'])?.['rocknsm.signing'];
  if (signing)
    lines.push(
      signing.policy === 'unsigned'
        ? `**Signatures: NONE.** ${describeSigning(signing)}`
        : `**Signatures:** ${describeSigning(signing)}`,
      '',
    );
  lines.push('| arch | image digest | base digest | input hash |', '| --- | --- | --- | --- |');
  for (const m of input.current) {
    lines.push(
      `| ${m['coreos-assembler.basearch']} | \`${short(m['rocknsm.image-digest'], 23)}\` | \`${short(m['base-oscontainer']?.digest, 23)}\` | \`${short(m['rocknsm.input-hash'], 16)}\` |`,
    );
  }
  lines.push('', '| arch | file | size | sha256 |', '| --- | --- | --- | --- |');
  for (const m of input.current) {
    for (const [key, img] of Object.entries(m.images ?? {}).sort(([a], [b]) => a.localeCompare(b))) {
      lines.push(
        `| ${m['coreos-assembler.basearch']} | ${img.path} (${key}) | ${humanSize(img.size)} | \`${short(img.sha256, 16)}\` |`,
      );
    }
  }
  lines.push('');
  // Images are the same for every arch (one pin is an index digest): the first arch's list.
  const images = Object.entries(input.current[0]?.['rocknsm.images'] ?? {}).sort(([a], [b]) =>
    a.localeCompare(b),
  );
  if (images.length) {
    lines.push('| service image | reference | pinned digest |', '| --- | --- | --- |');
    for (const [key, i] of images)
      lines.push(
        `| ${key} | \`${i.ref}\` | ${i.digest ? `\`${short(i.digest, 23)}\`` : '**by tag, not pinned**'} |`,
      );
    lines.push('');
  }
  const prev = input.previous;
  if (!prev) {
    lines.push('**Changes:** first build of this stream (no previous build known).', '');
    return lines.join('\n');
  }
  lines.push(`**Changes since ${prev.version}:**`, '');
  const changes: string[] = [];
  for (const m of input.current) {
    const arch = m['coreos-assembler.basearch'];
    const old = prev.metas.find((p) => p['coreos-assembler.basearch'] === arch);
    if (!old) {
      changes.push(`- ${arch}: new architecture`);
      continue;
    }
    const oldBase = old['base-oscontainer']?.digest;
    const newBase = m['base-oscontainer']?.digest;
    if (oldBase !== newBase)
      changes.push(`- ${arch}: base \`${short(oldBase, 23)}\` → \`${short(newBase, 23)}\``);
    else if (old['rocknsm.input-hash'] !== m['rocknsm.input-hash'])
      changes.push(
        `- ${arch}: same base; manifests or overlays changed (input hash \`${short(old['rocknsm.input-hash'], 12)}\` → \`${short(m['rocknsm.input-hash'], 12)}\`)`,
      );
    else changes.push(`- ${arch}: same inputs (rebuilt on request)`);
    const oldSize = old.images?.ostree?.size;
    const newSize = m.images?.ostree?.size;
    if (oldSize !== undefined && newSize !== undefined && oldSize !== newSize) {
      const delta = newSize - oldSize;
      changes.push(
        `  - image ${humanSize(oldSize)} → ${humanSize(newSize)} (${delta > 0 ? '+' : '−'}${humanSize(Math.abs(delta))})`,
      );
    }
  }
  const oldImages = prev.metas[0]?.['rocknsm.images'] ?? {};
  for (const [key, i] of images) {
    const o = oldImages[key];
    if (o && (o.digest ?? o.ref) !== (i.digest ?? i.ref))
      changes.push(`- ${key}: \`${short(o.digest ?? o.ref, 23)}\` → \`${short(i.digest ?? i.ref, 23)}\``);
  }
  for (const old of prev.metas)
    if (!input.current.some((m) => m['coreos-assembler.basearch'] === old['coreos-assembler.basearch']))
      changes.push(`- ${old['coreos-assembler.basearch']}: dropped`);
  lines.push(...changes, '');
  return lines.join('\n');
}
