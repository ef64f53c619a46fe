// The rules for one treefile mapping that a JSON Schema cannot say: known keys (with a suggestion
// for a misspelt one), legacy and per-arch keys, values that must compile or parse, and what an
// inline treefile may not carry. Types are the schema's (config/schema/treefile.schema.json). Pure.
import treefileSchema from '../config/schema/treefile.schema.json' with { type: 'json' };
import { compileSchema, type JsonPath, type SourceFile } from '../config/yaml.ts';
import type { ConfigIssue } from '../errors.ts';
import { parseCondition, splitPackages } from './treefile-condition.ts';
import {
  type Config,
  cmp,
  deriveKeys,
  enumAliases,
  INLINE_FORBIDDEN,
  isObject,
  isStringArray,
  legacyKeys,
  type Origin,
  RESERVED_VARS,
  treefileKeys,
} from './treefile-keys.ts';

export const validateTreefile = compileSchema(treefileSchema);

export const TYPE_WORDS: Record<string, string> = {
  string: 'a string',
  boolean: 'a boolean',
  integer: 'an integer',
  number: 'a number',
  array: 'a list',
  object: 'a mapping',
  null: 'null',
};

/** ajv says `must be boolean,integer,string`; say it in the words of a YAML file. */
export function typeWords(message: string): string {
  const m = /^must be ([a-z,]+)$/.exec(message);
  if (!m) return message;
  const words = m[1]!.split(',').map((t) => TYPE_WORDS[t] ?? t);
  const last = words.pop()!;
  return `must be ${words.length ? `${words.join(', ')} or ${last}` : last}`;
}

/** One file's issues in reading order: the schema's come in its key order, the rest in the file's. */
export function byPosition(issues: ConfigIssue[]): ConfigIssue[] {
  return [...issues].sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0));
}

export interface CheckCtx {
  inline: boolean;
  basearch: string;
  origin: SourceFile;
  shown: string;
  suffix: string;
  /** True when the schema already reported a problem at or below `path`. */
  invalid: (path: JsonPath) => boolean;
}

export type At = (
  path: JsonPath,
  rule: string,
  message: string,
  value?: unknown,
  key?: boolean,
) => ConfigIssue;

/**
 * Checks the keys of one treefile mapping (a file or an inline include) and canonicalizes them.
 * Value types were checked by the schema; a key whose value it refused is skipped here.
 */
export function checkConfig(
  data: Record<string, unknown>,
  base: JsonPath,
  at: At,
  issues: ConfigIssue[],
  ctx: CheckCtx,
): Config {
  const values = new Map<string, unknown>();
  const origins = new Map<string, Origin>();
  const before = issues.length;
  const archPackages: string[] = [];
  for (const [rawKey, value] of Object.entries(data)) {
    const p = [...base, rawKey];
    let key = rawKey;
    // Own keys only: `toString` is not a treefile key.
    if (Object.hasOwn(legacyKeys, rawKey)) {
      key = legacyKeys[rawKey]!;
      if (key in data) {
        issues.push(
          at(p, 'legacy-key', `cannot use new and legacy forms of ${key} (${rawKey})`, undefined, true),
        );
        continue;
      }
    }
    // packages-<basearch>: any arch is accepted, only the compose's is kept; take_archful_pkgs
    // (rust/src/treefile.rs:219 @d5ef5f0c).
    if (rawKey.startsWith('packages-') && !deriveKeys.includes(rawKey)) {
      if (ctx.invalid(p)) continue;
      if (ctx.inline) {
        issues.push(
          at(
            p,
            'inline-unsupported',
            `${rawKey} is ignored by rpm-ostree inside an inline treefile; use packages or a file`,
            undefined,
            true,
          ),
        );
        continue;
      }
      if (rawKey.slice('packages-'.length) === ctx.basearch) archPackages.push(...(value as string[]));
      continue;
    }
    if (deriveKeys.includes(rawKey)) {
      issues.push(
        at(
          p,
          'derive-only',
          `'${rawKey}' is a client-side derivation key; rpm-ostree compose rejects it`,
          undefined,
          true,
        ),
      );
      continue;
    }
    if (!Object.hasOwn(treefileKeys, key)) {
      issues.push(
        at(
          p,
          'unknown-key',
          `unknown treefile key '${rawKey}'${suggest(rawKey)}; known keys: ${knownKeyList()}`,
          undefined,
          true,
        ),
      );
      continue;
    }
    if (ctx.inline && key in INLINE_FORBIDDEN) {
      issues.push(at(p, 'inline-unsupported', `'${key}' ${INLINE_FORBIDDEN[key]}`, undefined, true));
      continue;
    }
    // Conditions are strings to the schema; their syntax is checked even when another entry is
    // ill-typed.
    if (key === 'conditional-include') checkConditionSyntax(value, p, at, issues);
    if (ctx.invalid(p) || !checkValue(key, value, p, at, issues, ctx.inline)) continue;
    const v = enumAliases[key]?.[value as string] ?? value;
    values.set(key, v);
    // Remember where substitutable strings came from, for messages after merging.
    const pos = ctx.origin.locate(p);
    const o: Origin = { file: ctx.shown, line: pos.line, col: pos.col, chain: ctx.suffix };
    if (['ref', 'automatic-version-prefix', 'mutate-os-release', 'platform-module'].includes(key))
      origins.set(key, o);
    if ((key === 'metadata' || key === 'add-commit-metadata') && isObject(value)) {
      for (const k of Object.keys(value)) {
        const kp = ctx.origin.locate([...p, k]);
        origins.set(`${key}/${k}`, { ...o, line: kp.line, col: kp.col });
      }
    }
    if (key === 'rojig') origins.set('rojig', o);
  }
  // Packages: whitespace split (unless quoted) for files; inline treefiles are not split by rpm-ostree.
  const pkgSources: { list: string[]; path: JsonPath }[] = [];
  if (isStringArray(data.packages)) pkgSources.push({ list: data.packages, path: [...base, 'packages'] });
  if (isStringArray(data['bootstrap-packages']))
    pkgSources.push({ list: data['bootstrap-packages'], path: [...base, 'bootstrap-packages'] });
  const pkgs = new Set<string>();
  for (const { list, path } of pkgSources) {
    list.forEach((entry, i) => {
      if (ctx.inline) {
        if (/[\s']/.test(entry))
          issues.push(
            at(
              [...path, i],
              'inline-package',
              'rpm-ostree does not split or unquote packages of inline treefiles; list one package per entry',
              entry,
            ),
          );
        else pkgs.add(entry);
        return;
      }
      const split = splitPackages(entry);
      if (split === null)
        issues.push(at([...path, i], 'package-quote', `missing terminating quote: ${entry}`, entry));
      else for (const p of split) pkgs.add(p);
    });
  }
  for (const entry of archPackages) {
    const split = splitPackages(entry);
    if (split === null)
      issues.push(at([...base], 'package-quote', `missing terminating quote: ${entry}`, entry));
    else for (const p of split) pkgs.add(p);
  }
  values.delete('bootstrap-packages');
  if (ctx.inline) {
    if (data.packages !== undefined) values.set('packages', [...pkgs].sort(cmp));
  } else values.set('packages', [...pkgs].sort(cmp));
  if (issues.length > before) return { values, origins };

  // `container: true` and edition 2024 change defaults at parse time, per file.
  if (!ctx.inline) {
    if (values.get('container') === true) {
      values.set('boot-location', 'modules');
      values.set('selinux', false);
      values.set('tmp-is-dir', true);
      values.set('preserve-passwd', false);
      values.set('check-passwd', { type: 'none' });
      values.set('check-groups', { type: 'none' });
    }
    if (values.get('edition') === '2024') {
      if (!values.has('boot-location')) values.set('boot-location', 'modules');
      if (!values.has('tmp-is-dir')) values.set('tmp-is-dir', true);
    }
  }
  for (const k of ['include', 'arch-include', 'conditional-include', 'variables']) values.delete(k);
  return { values, origins };
}

export function knownKeyList(): string {
  const keys = Object.keys(treefileKeys).filter(
    (k) => treefileKeys[k] !== 'consumed' || k !== 'bootstrap-packages',
  );
  return [...keys, 'packages-<basearch>'].sort(cmp).join(', ');
}

export function suggest(key: string): string {
  const dashed = key.replace(/_/g, '-');
  if (dashed !== key && dashed in treefileKeys) return ` (did you mean '${dashed}'?)`;
  const close = Object.keys(treefileKeys).find((k) => distance(k, key) <= 2);
  return close ? ` (did you mean '${close}'?)` : '';
}

export function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)] as number[]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      d[i]![j] = Math.min(
        d[i - 1]![j]! + 1,
        d[i]![j - 1]! + 1,
        d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
  return d[a.length]![b.length]!;
}

/**
 * The rules on one well-typed value that a type cannot say. Returns false when it added issues.
 */
export function checkValue(
  key: string,
  value: unknown,
  p: JsonPath,
  at: At,
  issues: ConfigIssue[],
  inline: boolean,
): boolean {
  const before = issues.length;
  switch (key) {
    case 'check-passwd':
    case 'check-groups':
      if (inline && (value as { type: string }).type === 'file')
        issues.push(
          at(
            [...p, 'type'],
            'inline-unsupported',
            `'${key}' of type file refers to an external file, which inline treefiles do not support`,
          ),
        );
      break;
    // validate_base_config (rust/src/treefile.rs:1504 @d5ef5f0c): a u32, but only 0 and 1 mean anything.
    case 'selinux-label-version':
      if (value !== 0 && value !== 1)
        issues.push(at(p, 'enum', `invalid selinux-label-version: ${value}; must be 0 or 1`, value));
      break;
    // validate_config (rust/src/treefile.rs:1475 @d5ef5f0c) wants one ASCII character; stricter: a
    // printable one.
    case 'automatic-version-suffix':
      if (!/^[\x20-\x7e]$/.test(value as string))
        issues.push(
          at(p, 'version-suffix', 'automatic-version-suffix must be exactly one ASCII character', value),
        );
      break;
    case 'repovars':
      for (const r of RESERVED_VARS)
        if (r in (value as object))
          issues.push(
            at(
              [...p, r],
              'reserved-variable',
              `repo var "${r}" is invalid; it is filled in from the treefile`,
              undefined,
              true,
            ),
          );
      break;
    // add_files_path_is_valid (rust/src/treefile.rs:673 @d5ef5f0c).
    case 'add-files':
      (value as [string, string][]).forEach(([, dest], i) => {
        if (!addFilesPathValid(dest))
          issues.push(
            at(
              [...p, i, 1],
              'add-files-path',
              `unsupported path in add-files: ${dest} (only /usr, /etc, /bin, /sbin, /lib, /lib64)`,
              dest,
            ),
          );
      });
      break;
    case 'remove-from-packages':
      checkRemoveRegexes(value as string[][], p, at, issues);
      break;
  }
  return issues.length === before;
}

/** Each entry is a package then regular expressions; a regex that does not compile is refused up front. */
export function checkRemoveRegexes(entries: string[][], p: JsonPath, at: At, issues: ConfigIssue[]): void {
  entries.forEach((entry, i) => {
    entry.slice(1).forEach((re, j) => {
      try {
        new RegExp(re);
      } catch (err) {
        issues.push(
          at([...p, i, j + 1], 'regex', `invalid regular expression: ${(err as Error).message}`, re),
        );
      }
    });
  });
}

/**
 * Every condition parses, whether or not its entry is reached: rpm-ostree parses them all when it
 * reads the file, in the Deserialize impl of IncludeCondition (rust/src/treefile.rs:2295 @d5ef5f0c).
 */
export function checkConditionSyntax(entries: unknown, p: JsonPath, at: At, issues: ConfigIssue[]): void {
  if (!Array.isArray(entries)) return;
  entries.forEach((e, i) => {
    const cond = isObject(e) ? e.if : undefined;
    const list = Array.isArray(cond)
      ? cond.map((c, j) => ({ c, cp: [...p, i, 'if', j] }))
      : [{ c: cond, cp: [...p, i, 'if'] }];
    for (const { c, cp } of list) {
      if (typeof c !== 'string') continue;
      const parsed = parseCondition(c);
      if ('rule' in parsed) issues.push(at(cp, parsed.rule, parsed.message, c));
    }
  });
}

export function addFilesPathValid(path: string): boolean {
  const p = path.replace(/^\/+/, '');
  return (
    (p.startsWith('usr/') && !p.startsWith('usr/local/')) ||
    ['etc/', 'bin/', 'sbin/', 'lib/', 'lib64/'].some((d) => p.startsWith(d))
  );
}
