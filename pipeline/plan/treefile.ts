// Flattens an rpm-ostree treefile tree for one basearch, the way `rpm-ostree compose tree
// --print-only` does (rust/src/treefile.rs in coreos/rpm-ostree): includes, arch-include,
// conditional-include, variables, packages-<arch>, and the per-kind merge rules. Pure: every file
// is read through the injected reader, so tests and `plan --compose` need no disk.
//
// Where rpm-ostree silently does something surprising (ignores a key in an inline treefile, keeps a
// literal `${undefined}`, accepts unknown keys in JSON), we reject the input instead, so what we
// flatten is always exactly what rpm-ostree composes. Each such rule is marked "stricter".
import { dirname, extname, isAbsolute, join, normalize, relative } from 'node:path';
import { type JsonPath, parseYaml, type SourceFile } from '../config/yaml.ts';
import { ConfigError, type ConfigIssue } from '../errors.ts';

/** A variable value: rpm-ostree's VarValue (bool, unsigned integer, string). */
export type VarValue = boolean | number | string;

/** Returns a file's text, or undefined when it does not exist. Paths are absolute. */
export type ReadFile = (path: string) => string | undefined;

export interface FlattenOptions {
  /** Root treefile, absolute. */
  file: string;
  basearch: string;
  read: ReadFile;
  /**
   * Variables that win over every file's `variables`, as if set by a wrapper treefile that
   * includes `file` (which is how the compose injects the stream).
   */
  variables?: Record<string, VarValue>;
  /** Directory that file names in messages are shown relative to. Default: the root's directory. */
  displayRoot?: string;
}

/** A file the compose reads besides treefiles (postprocess-script, add-files, check-passwd). */
export interface ExternalFile {
  role: 'postprocess-script' | 'add-files' | 'check-passwd' | 'check-groups';
  path: string;
}

export interface FlattenResult {
  /** The flattened treefile, keys in rpm-ostree's serialization order (as `--print-only`). */
  treefile: Record<string, unknown>;
  /** Final variables (sorted), including the reserved `basearch` and `releasever`. */
  variables: Record<string, VarValue>;
  /** Every treefile read, in processing order (absolute). */
  files: string[];
  externals: ExternalFile[];
}

type Kind =
  | 'string'
  | 'bool'
  | 'uint'
  | 'strings'
  | 'releasever'
  | 'map'
  | 'string-map'
  | 'variables'
  | 'include'
  | 'arch-include'
  | 'conditional-include'
  | 'add-files'
  | 'remove-from-packages'
  | 'check'
  | 'repo-packages'
  | 'rojig'
  | { enum: string[]; canonical?: Record<string, string> };

type Merge = 'scalar' | 'vec' | 'map' | 'set' | 'none' | 'consumed' | 'repo-packages';

interface KeySpec {
  kind: Kind;
  merge: Merge;
}

const s = (kind: Kind, merge: Merge): KeySpec => ({ kind, merge });

// Every key BaseComposeConfigFields / TreeComposeConfig accept, in serde's serialization order
// (that order is the order of `--print-only` output). Merge semantics from treefile_merge():
// scalar = first wins (the including file), vec = included entries first, map = including file
// wins per key, set = sorted union, none = not merged at all (only the root's value counts).
export const treefileKeys: Record<string, KeySpec> = {
  packages: s('strings', 'set'),
  'repo-packages': s('repo-packages', 'repo-packages'),
  cliwrap: s('bool', 'scalar'),
  'cliwrap-binaries': s('strings', 'vec'),
  edition: s({ enum: ['2014', '2024'] }, 'scalar'),
  ref: s('string', 'scalar'),
  metadata: s('map', 'map'),
  basearch: s('string', 'scalar'),
  variables: s('variables', 'consumed'),
  repovars: s('string-map', 'map'),
  rojig: s('rojig', 'scalar'),
  repos: s('strings', 'vec'),
  'lockfile-repos': s('strings', 'vec'),
  selinux: s('bool', 'scalar'),
  'ignore-devices': s('bool', 'scalar'),
  'selinux-label-version': s('uint', 'scalar'),
  sysusers: s({ enum: ['compose-auto', 'compose-forced'] }, 'scalar'),
  ima: s('bool', 'scalar'),
  'gpg-key': s('string', 'scalar'),
  include: s('include', 'consumed'),
  'arch-include': s('arch-include', 'consumed'),
  'conditional-include': s('conditional-include', 'consumed'),
  'bootstrap-packages': s('strings', 'consumed'),
  'ostree-layers': s('strings', 'vec'),
  'ostree-override-layers': s('strings', 'vec'),
  'exclude-packages': s('strings', 'vec'),
  'platform-module': s('string', 'none'),
  container: s('bool', 'scalar'),
  recommends: s('bool', 'scalar'),
  documentation: s('bool', 'scalar'),
  'install-langs': s('strings', 'vec'),
  'initramfs-args': s('strings', 'vec'),
  'no-initramfs': s('bool', 'scalar'),
  'readonly-executables': s('bool', 'scalar'),
  'boot-location': s({ enum: ['new', 'modules', 'kernel-install'] }, 'scalar'),
  'tmp-is-dir': s('bool', 'scalar'),
  'opt-usrlocal': s(
    { enum: ['var', 'root', 'state-overlay', 'stateoverlay'], canonical: { stateoverlay: 'state-overlay' } },
    'scalar',
  ),
  units: s('strings', 'vec'),
  'default-target': s('string', 'scalar'),
  'machineid-compat': s('bool', 'scalar'),
  releasever: s('releasever', 'scalar'),
  'automatic-version-prefix': s('string', 'scalar'),
  'automatic-version-suffix': s('string', 'scalar'),
  'mutate-os-release': s('string', 'scalar'),
  'etc-group-members': s('strings', 'vec'),
  'preserve-passwd': s('bool', 'scalar'),
  'check-passwd': s('check', 'scalar'),
  'check-groups': s('check', 'scalar'),
  'ignore-removed-users': s('strings', 'set'),
  'ignore-removed-groups': s('strings', 'set'),
  'postprocess-script': s('string', 'scalar'),
  postprocess: s('strings', 'vec'),
  'add-files': s('add-files', 'vec'),
  'remove-files': s('strings', 'vec'),
  'remove-from-packages': s('remove-from-packages', 'vec'),
  'add-commit-metadata': s('map', 'map'),
  'repo-metadata': s({ enum: ['inline', 'detached', 'disabled'] }, 'scalar'),
  'advisories-metadata': s({ enum: ['inline', 'detached', 'disabled'] }, 'scalar'),
  rpmdb: s(
    { enum: ['bdb', 'b-d-b', 'sqlite', 'ndb', 'target', 'host'], canonical: { 'b-d-b': 'bdb' } },
    'scalar',
  ),
  'rpmdb-normalize': s('bool', 'scalar'),
  'container-cmd': s('strings', 'scalar'),
};

/** Old underscore spellings rpm-ostree still reads (LegacyTreeComposeConfigFields). */
export const legacyKeys: Record<string, string> = {
  gpg_key: 'gpg-key',
  boot_location: 'boot-location',
  default_target: 'default-target',
  automatic_version_prefix: 'automatic-version-prefix',
};

/** Client-side derivation keys: rpm-ostree knows them but a server compose rejects them. */
export const deriveKeys = [
  'base-refspec',
  'container-image-reference',
  'packages-local',
  'packages-local-fileoverride',
  'override-remove',
  'ex-override-replace',
  'override-replace-local',
  'initramfs',
  'custom',
  'override-commit',
  'unconfigured-state',
];

const INCLUDE_MAXDEPTH = 50;
const RESERVED_VARS = ['basearch', 'releasever'];
/** Keys an inline conditional-include treefile cannot carry (rpm-ostree: external files; stricter: ignored keys). */
const INLINE_FORBIDDEN: Record<string, string> = {
  'postprocess-script': 'refers to an external file, which inline treefiles do not support',
  'add-files': 'refers to external files, which inline treefiles do not support',
  include: 'is ignored by rpm-ostree inside an inline treefile; use a file',
  'arch-include': 'is ignored by rpm-ostree inside an inline treefile; use a file',
  'conditional-include': 'is ignored by rpm-ostree inside an inline treefile; use a file',
  variables: 'is ignored by rpm-ostree inside an inline treefile; define it in a file',
  'bootstrap-packages': 'is ignored by rpm-ostree inside an inline treefile; use packages',
};

/** One step of the include chain: the file and where in it the next file was included. */
interface ChainLink {
  file: string;
  line?: number;
  col?: number;
}

interface Origin {
  file: string;
  line: number;
  col: number;
  chain: string;
}

/** A parsed treefile: canonical keys, plus where each substitutable string came from. */
interface Config {
  values: Map<string, unknown>;
  origins: Map<string, Origin>;
}

interface State {
  opts: FlattenOptions;
  displayRoot: string;
  seen: Map<string, string>;
  variables: Map<string, VarValue>;
  files: string[];
  externals: ExternalFile[];
}

/** Flattens `opts.file` for `opts.basearch`. Throws ConfigError with file:line:col and the include chain. */
export function flattenTreefile(opts: FlattenOptions): FlattenResult {
  const state: State = {
    opts,
    displayRoot: opts.displayRoot ?? dirname(opts.file),
    seen: new Map(),
    variables: new Map(),
    files: [],
    externals: [],
  };
  for (const [k, v] of Object.entries(opts.variables ?? {})) {
    if (RESERVED_VARS.includes(k)) {
      throw new ConfigError([
        {
          file: '(caller)',
          path: `/variables/${k}`,
          rule: 'reserved-variable',
          message: `cannot define reserved variable '${k}'`,
        },
      ]);
    }
    state.variables.set(k, v);
  }
  const root = parseRecurse(state, normalize(opts.file), [], 0);
  substituteVariables(state, root);
  const variables = Object.fromEntries([...state.variables].sort(([a], [b]) => cmp(a, b)));
  return { treefile: serialize(root), variables, files: state.files, externals: state.externals };
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function display(state: State, file: string): string {
  return relative(state.displayRoot, file) || file;
}

function chainText(state: State, chain: ChainLink[], file?: string): string {
  if (chain.length === 0) return '';
  const parts = chain.map((c) =>
    [display(state, c.file), c.line, c.col].filter((p) => p !== undefined).join(':'),
  );
  if (file) parts.push(display(state, file));
  return ` [include chain: ${parts.join(' -> ')}]`;
}

function parseRecurse(state: State, file: string, chain: ChainLink[], depth: number): Config {
  const shown = display(state, file);
  const text = state.opts.read(file);
  const via = chain[chain.length - 1];
  if (text === undefined) {
    throw new ConfigError([
      {
        file: via ? display(state, via.file) : shown,
        line: via?.line,
        col: via?.col,
        path: '',
        rule: 'include-missing',
        message: `${shown} does not exist${chainText(state, chain, file)}`,
      },
    ]);
  }
  state.files.push(file);
  const ext = extname(file);
  if (!['.yaml', '.yml', '.json'].includes(ext)) {
    throw new ConfigError([
      {
        file: via ? display(state, via.file) : shown,
        line: via?.line,
        col: via?.col,
        path: '',
        rule: 'treefile-format',
        message: `${shown}: treefiles must end in .yaml, .yml or .json (kickstart .ks is not supported here)${chainText(state, chain, file)}`,
      },
    ]);
  }
  const parsed = parseYaml(text, shown);
  const suffix = chainText(state, chain, file);
  if (!parsed.source) {
    throw new ConfigError(parsed.issues.map((i) => ({ ...i, message: `${i.message}${suffix}` })));
  }
  const src = parsed.source;
  const issues: ConfigIssue[] = [];
  const at = (path: JsonPath, rule: string, message: string, value?: unknown, key = false): ConfigIssue => ({
    file: shown,
    ...src.locate(path, key),
    path: `/${path.join('/')}`,
    rule,
    message: `${message}${suffix}`,
    value,
  });
  const data = src.data ?? {};
  if (!isObject(data)) {
    throw new ConfigError([at([], 'type', 'a treefile must be a mapping', data)]);
  }

  const cfg = checkConfig(data, [], at, issues, {
    inline: false,
    basearch: state.opts.basearch,
    origin: src,
    shown,
    suffix,
  });

  // Reserved variables, variable types.
  const fileVars = new Map<string, VarValue>();
  const rawVars = data.variables;
  if (isObject(rawVars)) {
    for (const [k, v] of Object.entries(rawVars)) {
      if (RESERVED_VARS.includes(k)) {
        issues.push(
          at(
            ['variables', k],
            'reserved-variable',
            `cannot define reserved variable '${k}'`,
            undefined,
            true,
          ),
        );
      } else if (isVarValue(v)) fileVars.set(k, v);
      else
        issues.push(
          at(['variables', k], 'type', 'a variable must be a boolean, an unsigned integer or a string', v),
        );
    }
  }
  // basearch in a file must match the compose's.
  const tfArch = cfg.values.get('basearch');
  if (typeof tfArch === 'string' && tfArch !== state.opts.basearch) {
    issues.push(
      at(
        ['basearch'],
        'basearch',
        `invalid basearch ${tfArch} on ${state.opts.basearch}: cross-composes are not supported`,
        tfArch,
      ),
    );
  }
  if (issues.length) throw new ConfigError(issues);

  // Auto-mirror basearch and releasever into this file's variables, then fold them in:
  // variables known earlier (the including files, earlier siblings, the caller) win.
  fileVars.set('basearch', state.opts.basearch);
  const rv = cfg.values.get('releasever');
  if (rv !== undefined) fileVars.set('releasever', rv as VarValue);
  for (const [k, v] of fileVars) if (!state.variables.has(k)) state.variables.set(k, v);

  // Includes: `include`, then the matching `arch-include`, then matching conditional files.
  const includes: { name: string; path: JsonPath }[] = [];
  const inc = data.include;
  if (typeof inc === 'string') includes.push({ name: inc, path: ['include'] });
  else if (Array.isArray(inc))
    inc.forEach((n, i) => {
      includes.push({ name: n as string, path: ['include', i] });
    });
  const archInc = isObject(data['arch-include']) ? data['arch-include'][state.opts.basearch] : undefined;
  if (typeof archInc === 'string')
    includes.push({ name: archInc, path: ['arch-include', state.opts.basearch] });
  else if (Array.isArray(archInc))
    archInc.forEach((n, i) => {
      includes.push({ name: n as string, path: ['arch-include', state.opts.basearch, i] });
    });

  const conds = Array.isArray(data['conditional-include']) ? data['conditional-include'] : [];
  conds.forEach((entry, i) => {
    const e = entry as { if: unknown; include: unknown };
    const list = Array.isArray(e.if)
      ? e.if.map((c, j) => ({ c, p: ['conditional-include', i, 'if', j] }))
      : [{ c: e.if, p: ['conditional-include', i, 'if'] }];
    let matches = true;
    // Every condition is evaluated, so type errors surface even when an earlier one is false.
    for (const { c, p } of list) {
      const result = evaluateCondition(c as string, state.variables);
      if (typeof result === 'object') {
        issues.push(at(p as JsonPath, result.rule, result.message, c));
        continue;
      }
      matches = matches && result;
    }
    if (!matches || issues.length) return;
    if (isObject(e.include)) {
      const inline = checkConfig(e.include, ['conditional-include', i, 'include'], at, issues, {
        inline: true,
        basearch: state.opts.basearch,
        origin: src,
        shown,
        suffix,
      });
      if (!issues.length) mergeInto(cfg, inline);
    } else if (typeof e.include === 'string')
      includes.push({ name: e.include, path: ['conditional-include', i, 'include'] });
    else if (Array.isArray(e.include))
      e.include.forEach((n, j) => {
        includes.push({ name: n as string, path: ['conditional-include', i, 'include', j] });
      });
  });
  if (issues.length) throw new ConfigError(issues);

  // Externals are resolved against this file's directory.
  collectExternals(state, file, data, at);

  for (const { name, path } of includes) {
    const pos = src.locate(path);
    const link: ChainLink = { file, line: pos.line, col: pos.col };
    const target = normalize(isAbsolute(name) ? name : join(dirname(file), name));
    if (depth === INCLUDE_MAXDEPTH) {
      throw new ConfigError([
        at(path, 'include-depth', `reached maximum include depth ${INCLUDE_MAXDEPTH}`, name),
      ]);
    }
    const cycle = [...chain, { file }].findIndex((c) => c.file === target);
    if (cycle >= 0) {
      const loop = [
        ...chain.slice(cycle).map((c) => display(state, c.file)),
        display(state, file),
        display(state, target),
      ];
      throw new ConfigError([at(path, 'include-cycle', `include cycle: ${loop.join(' -> ')}`, name)]);
    }
    const firstVia = state.seen.get(target);
    if (firstVia !== undefined) {
      throw new ConfigError([
        at(
          path,
          'include-duplicate',
          `${display(state, target)} was already included (from ${firstVia}); rpm-ostree rejects including a file twice`,
          name,
        ),
      ]);
    }
    state.seen.set(target, `${shown}:${pos.line}:${pos.col}`);
    const child = parseRecurse(state, target, [...chain, link], depth + 1);
    mergeInto(cfg, child);
  }
  return cfg;
}

interface CheckCtx {
  inline: boolean;
  basearch: string;
  origin: SourceFile;
  shown: string;
  suffix: string;
}

type At = (path: JsonPath, rule: string, message: string, value?: unknown, key?: boolean) => ConfigIssue;

/** Type-checks one treefile mapping (a file or an inline include) and canonicalizes its keys. */
function checkConfig(
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
    if (rawKey in legacyKeys) {
      key = legacyKeys[rawKey]!;
      if (key in data) {
        issues.push(
          at(p, 'legacy-key', `cannot use new and legacy forms of ${key} (${rawKey})`, undefined, true),
        );
        continue;
      }
    }
    if (rawKey.startsWith('packages-') && !deriveKeys.includes(rawKey)) {
      if (!isStringArray(value)) {
        issues.push(at(p, 'type', `invalid field ${rawKey}: expected array of strings`, value));
        continue;
      }
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
      if (rawKey.slice('packages-'.length) === ctx.basearch) archPackages.push(...value);
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
    const spec = treefileKeys[key];
    if (!spec) {
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
    const problem = checkKind(spec.kind, value, p, at, issues);
    if (problem) continue;
    if (
      ctx.inline &&
      (key === 'check-passwd' || key === 'check-groups') &&
      (value as { type: string }).type === 'file'
    ) {
      issues.push(
        at(
          [...p, 'type'],
          'inline-unsupported',
          `'${key}' of type file refers to an external file, which inline treefiles do not support`,
        ),
      );
      continue;
    }
    let v = value;
    if (typeof spec.kind === 'object' && spec.kind.canonical?.[value as string])
      v = spec.kind.canonical[value as string];
    if (key === 'selinux-label-version' && value !== 0 && value !== 1)
      issues.push(at(p, 'enum', `invalid selinux-label-version: ${value}; must be 0 or 1`, value));
    if (key === 'automatic-version-suffix' && !/^[\x20-\x7e]$/.test(value as string))
      issues.push(
        at(p, 'version-suffix', 'automatic-version-suffix must be exactly one ASCII character', value),
      );
    if (key === 'repovars' && isObject(value)) {
      for (const r of RESERVED_VARS)
        if (r in value)
          issues.push(
            at(
              [...p, r],
              'reserved-variable',
              `repo var "${r}" is invalid; it is filled in from the treefile`,
              undefined,
              true,
            ),
          );
    }
    if (key === 'add-files') {
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
    }
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

function knownKeyList(): string {
  const keys = Object.keys(treefileKeys).filter(
    (k) => treefileKeys[k]!.merge !== 'consumed' || k !== 'bootstrap-packages',
  );
  return [...keys, 'packages-<basearch>'].sort(cmp).join(', ');
}

function suggest(key: string): string {
  const dashed = key.replace(/_/g, '-');
  if (dashed !== key && dashed in treefileKeys) return ` (did you mean '${dashed}'?)`;
  const close = Object.keys(treefileKeys).find((k) => distance(k, key) <= 2);
  return close ? ` (did you mean '${close}'?)` : '';
}

function distance(a: string, b: string): number {
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

/** Returns true when the value does not have the kind (issues were added). */
function checkKind(kind: Kind, v: unknown, p: JsonPath, at: At, issues: ConfigIssue[]): boolean {
  const fail = (msg: string, path = p, value: unknown = v) => {
    issues.push(at(path, 'type', msg, value));
    return true;
  };
  if (typeof kind === 'object') {
    if (typeof v !== 'string' || !kind.enum.includes(v)) {
      issues.push(at(p, 'enum', `must be one of ${kind.enum.map((e) => JSON.stringify(e)).join(', ')}`, v));
      return true;
    }
    return false;
  }
  switch (kind) {
    case 'string':
      return typeof v === 'string' ? false : fail('must be a string');
    case 'bool':
      return typeof v === 'boolean' ? false : fail('must be a boolean');
    case 'uint':
      return isUint(v) ? false : fail('must be an unsigned integer');
    case 'releasever':
      return isUint(v) || typeof v === 'string' ? false : fail('must be a string or an unsigned integer');
    case 'strings': {
      if (!Array.isArray(v)) return fail('must be an array of strings');
      const bad = v.findIndex((x) => typeof x !== 'string');
      return bad >= 0 ? fail('must be a string', [...p, bad], v[bad]) : false;
    }
    case 'map':
      return isObject(v) ? false : fail('must be a mapping');
    case 'string-map': {
      if (!isObject(v)) return fail('must be a mapping of strings');
      const bad = Object.entries(v).find(([, x]) => typeof x !== 'string');
      return bad ? fail('must be a string', [...p, bad[0]], bad[1]) : false;
    }
    case 'variables':
      return isObject(v) ? false : fail('must be a mapping of variable names to values');
    case 'include': {
      if (typeof v === 'string') return false;
      return checkKind('strings', v, p, at, issues);
    }
    case 'arch-include': {
      if (!isObject(v)) return fail('must be a mapping of basearch to include');
      let bad = false;
      for (const [arch, inc] of Object.entries(v))
        bad = checkKind('include', inc, [...p, arch], at, issues) || bad;
      return bad;
    }
    case 'conditional-include': {
      if (!Array.isArray(v)) return fail('must be a list of {if, include}');
      let bad = false;
      v.forEach((e, i) => {
        const ep = [...p, i];
        if (!isObject(e)) {
          bad = fail('must be a mapping with keys if and include', ep, e);
          return;
        }
        for (const k of Object.keys(e))
          if (k !== 'if' && k !== 'include') {
            issues.push(
              at(
                [...ep, k],
                'unknown-key',
                `unknown key '${k}' in conditional-include; expected if and include`,
                undefined,
                true,
              ),
            );
            bad = true;
          }
        for (const k of ['if', 'include'])
          if (!(k in e)) {
            issues.push(at(ep, 'required', `missing required key '${k}'`));
            bad = true;
          }
        if ('if' in e) {
          const conds = Array.isArray(e.if) ? e.if : [e.if];
          conds.forEach((c, j) => {
            const cp = Array.isArray(e.if) ? [...ep, 'if', j] : [...ep, 'if'];
            if (typeof c !== 'string')
              bad = fail('a condition must be a string like `stream == "stable"`', cp, c);
            else {
              const parsed = parseCondition(c);
              if ('rule' in parsed) {
                issues.push(at(cp, parsed.rule, parsed.message, c));
                bad = true;
              }
            }
          });
        }
        if ('include' in e && !isObject(e.include))
          bad = checkKind('include', e.include, [...ep, 'include'], at, issues) || bad;
      });
      return bad;
    }
    case 'add-files': {
      if (!Array.isArray(v)) return fail('must be a list of [source, destination] pairs');
      const bad = v.findIndex((x) => !Array.isArray(x) || x.length !== 2 || !isStringArray(x));
      return bad >= 0 ? fail('must be a [source, destination] pair of strings', [...p, bad], v[bad]) : false;
    }
    case 'remove-from-packages': {
      if (!Array.isArray(v)) return fail('must be a list of [package, regex...] lists');
      const bad = v.findIndex((x) => !isStringArray(x) || x.length < 1);
      if (bad >= 0)
        return fail('must be a list of strings: a package, then regular expressions', [...p, bad], v[bad]);
      for (const [i, entry] of (v as string[][]).entries()) {
        for (const [j, re] of entry.slice(1).entries()) {
          try {
            new RegExp(re);
          } catch (err) {
            return fail(`invalid regular expression: ${(err as Error).message}`, [...p, i, j + 1], re);
          }
        }
      }
      return false;
    }
    case 'check': {
      if (!isObject(v) || typeof v.type !== 'string')
        return fail('must be a mapping with a type (none, previous, file, data)');
      const allowed: Record<string, string[]> = {
        none: [],
        previous: [],
        file: ['filename'],
        data: ['entries'],
      };
      const extra = allowed[v.type];
      if (!extra) {
        issues.push(at([...p, 'type'], 'enum', 'must be one of "none", "previous", "file", "data"', v.type));
        return true;
      }
      for (const k of Object.keys(v))
        if (k !== 'type' && !extra.includes(k)) {
          issues.push(at([...p, k], 'unknown-key', `unknown key '${k}' for type ${v.type}`, undefined, true));
          return true;
        }
      if (v.type === 'file' && typeof v.filename !== 'string')
        return fail('type file needs a filename string', p, undefined);
      if (v.type === 'data' && !isObject(v.entries))
        return fail('type data needs an entries mapping', p, undefined);
      return false;
    }
    case 'repo-packages': {
      if (!Array.isArray(v)) return fail('must be a list of {repo, packages}');
      const bad = v.findIndex(
        (x) =>
          !isObject(x) ||
          typeof x.repo !== 'string' ||
          !isStringArray(x.packages) ||
          Object.keys(x).some((k) => k !== 'repo' && k !== 'packages'),
      );
      return bad >= 0 ? fail('must be {repo: string, packages: [strings]}', [...p, bad], v[bad]) : false;
    }
    case 'rojig': {
      if (!isObject(v)) return fail('must be a mapping with name, summary, license');
      for (const k of ['name', 'summary', 'license'])
        if (typeof v[k] !== 'string') return fail(`rojig needs a string '${k}'`);
      return false;
    }
  }
}

function collectExternals(state: State, file: string, data: Record<string, unknown>, at: At): void {
  const dir = dirname(file);
  const want: { role: ExternalFile['role']; name: string; path: JsonPath }[] = [];
  if (typeof data['postprocess-script'] === 'string')
    want.push({ role: 'postprocess-script', name: data['postprocess-script'], path: ['postprocess-script'] });
  if (Array.isArray(data['add-files']))
    (data['add-files'] as [string, string][]).forEach(([src], i) => {
      want.push({ role: 'add-files', name: src, path: ['add-files', i, 0] });
    });
  for (const role of ['check-passwd', 'check-groups'] as const) {
    const c = data[role];
    if (isObject(c) && c.type === 'file')
      want.push({ role, name: c.filename as string, path: [role, 'filename'] });
  }
  const missing: ConfigIssue[] = [];
  for (const w of want) {
    const path = normalize(join(dir, w.name));
    if (state.opts.read(path) === undefined)
      missing.push(at(w.path, 'file-missing', `${display(state, path)} does not exist`, w.name));
    else state.externals.push({ role: w.role, path });
  }
  if (missing.length) throw new ConfigError(missing);
}

/** Merges `src` (an included treefile) into `dest` (the including one), per treefile_merge(). */
function mergeInto(dest: Config, src: Config): void {
  for (const [key, spec] of Object.entries(treefileKeys)) {
    const sv = src.values.get(key);
    if (sv === undefined) continue;
    const dv = dest.values.get(key);
    switch (spec.merge) {
      case 'scalar':
        if (dv === undefined) {
          dest.values.set(key, sv);
          for (const [ok, o] of src.origins) if (ok === key) dest.origins.set(ok, o);
        }
        break;
      case 'vec':
        dest.values.set(key, [...(sv as unknown[]), ...((dv as unknown[]) ?? [])]);
        break;
      case 'set':
        dest.values.set(key, [...new Set([...(sv as string[]), ...((dv as string[]) ?? [])])].sort(cmp));
        break;
      case 'map': {
        const merged = { ...(sv as object), ...((dv as object) ?? {}) };
        dest.values.set(key, merged);
        for (const [ok, o] of src.origins)
          if (ok.startsWith(`${key}/`) && !dest.origins.has(ok)) dest.origins.set(ok, o);
        break;
      }
      case 'repo-packages': {
        // Later entries win for a package listed twice: walk backwards, keep first sightings.
        const all = [...(sv as RepoPackage[]), ...((dv as RepoPackage[]) ?? [])];
        const seen = new Set<string>();
        const kept: RepoPackage[] = [];
        for (const rp of [...all].reverse()) {
          const pk = rp.packages.filter((p) => !seen.has(p));
          for (const p of pk) seen.add(p);
          if (pk.length) kept.push({ repo: rp.repo, packages: pk });
        }
        dest.values.set(key, kept.reverse());
        break;
      }
      case 'none':
      case 'consumed':
        break;
    }
  }
}

interface RepoPackage {
  repo: string;
  packages: string[];
}

// envsubst semantics: a string is templated when it has `${` before a `}`; each `${name}` of a
// known variable is replaced. Stricter: a `${name}` left over is an error, not a literal.
function substituteVariables(state: State, cfg: Config): void {
  const issues: ConfigIssue[] = [];
  for (const [k, v] of state.variables) {
    for (const [what, text] of [
      ['name', k],
      ['value', String(v)],
    ] as const) {
      const bad = ['$', '{', '}'].find((c) => text.includes(c));
      if (bad)
        issues.push({
          file: '(variables)',
          path: `/variables/${k}`,
          rule: 'variable-chars',
          message: `variable ${what} '${text}' contains forbidden character '${bad}'`,
        });
    }
  }
  if (issues.length) throw new ConfigError(issues);
  const subst = (text: string, origin: Origin | undefined, key: string): string => {
    const start = text.indexOf('${');
    const end = text.indexOf('}');
    if (start < 0 || end < 0 || start > end) return text;
    let out = text;
    for (const [k, v] of state.variables) out = out.split(`\${${k}}`).join(String(v));
    const left = out.match(/\$\{([^}]*)\}/);
    if (left) {
      issues.push({
        file: origin?.file ?? '(treefile)',
        line: origin?.line,
        col: origin?.col,
        path: `/${key}`,
        rule: 'undefined-variable',
        message: `undefined variable '${left[1]}' in ${key}; defined: ${[...state.variables.keys()].sort(cmp).join(', ')}${origin?.chain ?? ''}`,
        value: text,
      });
    }
    return out;
  };
  for (const key of ['ref', 'automatic-version-prefix', 'mutate-os-release', 'platform-module']) {
    const v = cfg.values.get(key);
    if (typeof v === 'string') cfg.values.set(key, subst(v, cfg.origins.get(key), key));
  }
  const rojig = cfg.values.get('rojig') as Record<string, string> | undefined;
  if (rojig) {
    const r = { ...rojig };
    for (const k of ['name', 'summary', 'description'])
      if (typeof r[k] === 'string') r[k] = subst(r[k], cfg.origins.get('rojig'), `rojig/${k}`);
    cfg.values.set('rojig', r);
  }
  for (const key of ['metadata', 'add-commit-metadata']) {
    const m = cfg.values.get(key) as Record<string, unknown> | undefined;
    if (!m) continue;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(m))
      out[k] = typeof v === 'string' ? subst(v, cfg.origins.get(`${key}/${k}`), `${key}/${k}`) : v;
    cfg.values.set(key, out);
  }
  if (issues.length) throw new ConfigError(issues);
}

/** Serializes like serde: keys in struct order, maps sorted, absent keys omitted. */
function serialize(cfg: Config): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(treefileKeys)) {
    if (
      [
        'variables',
        'repovars',
        'include',
        'arch-include',
        'conditional-include',
        'bootstrap-packages',
      ].includes(key)
    )
      continue;
    const v = cfg.values.get(key);
    if (v === undefined) continue;
    out[key] = key === 'releasever' || key === 'packages' ? v : sortKeys(v);
  }
  return out;
}

/** Deep copy with object keys sorted (serde's BTreeMap order); arrays keep their order. */
export function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (isObject(v))
    return Object.fromEntries(
      Object.keys(v)
        .sort(cmp)
        .map((k) => [k, sortKeys(v[k])]),
    );
  return v;
}

/** JSON with sorted keys and no whitespace: the form hashed for change detection. */
export function canonicalJson(v: unknown): string {
  return JSON.stringify(sortKeys(v));
}

type Cond = { variable: string; op: '==' | '!=' | '<' | '<=' | '>' | '>='; value: VarValue };
const OPS = ['==', '!=', '<', '<=', '>', '>='];
const COND_RE = /^\s*([A-Za-z0-9_]+)\s*(\S+?)\s*(?:(true)|(false)|([0-9]+)|"(.*)")\s*$/;

/** Parses `<var> <op> <value>` like rpm-ostree's IncludeCondition deserializer. */
export function parseCondition(text: string): Cond | { rule: string; message: string } {
  const m = COND_RE.exec(text);
  if (!m)
    return {
      rule: 'condition-syntax',
      message: `invalid condition: ${text} (expected <var> <op> <value>; strings in double quotes)`,
    };
  const op = m[2]!;
  if (!OPS.includes(op))
    return { rule: 'condition-operator', message: `expected one of ==, !=, >, >=, <, <= but got ${op}` };
  let value: VarValue;
  if (m[3]) value = true;
  else if (m[4]) value = false;
  else if (m[5] !== undefined) {
    const n = Number(m[5]);
    if (!Number.isSafeInteger(n)) return { rule: 'condition-syntax', message: `number too large: ${m[5]}` };
    value = n;
  } else value = m[6]!;
  return { variable: m[1]!, op: op as Cond['op'], value };
}

/** Evaluates a condition; an object means an error (undefined variable, type mismatch, bad op). */
export function evaluateCondition(
  text: string,
  vars: Map<string, VarValue>,
): boolean | { rule: string; message: string } {
  const c = parseCondition(text);
  if ('rule' in c) return c;
  if (!vars.has(c.variable)) {
    return {
      rule: 'undefined-variable',
      message: `undefined variable '${c.variable}'; defined so far: ${[...vars.keys()].sort(cmp).join(', ')}`,
    };
  }
  const val = vars.get(c.variable)!;
  if (typeof val !== typeof c.value) {
    return {
      rule: 'condition-type',
      message: `${c.variable} (${typeof val} ${JSON.stringify(val)}) is not the same type as ${JSON.stringify(c.value)}`,
    };
  }
  switch (c.op) {
    case '==':
      return val === c.value;
    case '!=':
      return val !== c.value;
  }
  if (typeof val !== 'number')
    return {
      rule: 'condition-operator',
      message: `invalid op ${c.op} for values '${val}' and '${c.value}' (only numbers are ordered)`,
    };
  const b = c.value as number;
  return c.op === '<' ? val < b : c.op === '<=' ? val <= b : c.op === '>' ? val > b : val >= b;
}

/** Splits a packages entry on whitespace unless inside single quotes; null on an unterminated quote. */
export function splitPackages(entry: string): string[] | null {
  const out: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < entry.length; i++) {
    if (entry[i] !== "'") continue;
    if (quoted) out.push(entry.slice(start, i));
    else out.push(...entry.slice(start, i).split(/\s+/).filter(Boolean));
    quoted = !quoted;
    start = i + 1;
  }
  if (quoted) return null;
  out.push(...entry.slice(start).split(/\s+/).filter(Boolean));
  return out;
}

function addFilesPathValid(path: string): boolean {
  const p = path.replace(/^\/+/, '');
  return (
    (p.startsWith('usr/') && !p.startsWith('usr/local/')) ||
    ['etc/', 'bin/', 'sbin/', 'lib/', 'lib64/'].some((d) => p.startsWith(d))
  );
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}
function isUint(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}
function isVarValue(v: unknown): v is VarValue {
  return typeof v === 'boolean' || typeof v === 'string' || isUint(v);
}
