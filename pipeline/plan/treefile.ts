// Flattens an rpm-ostree treefile tree for one basearch, the way `rpm-ostree compose tree
// --print-only` does (rust/src/treefile.rs in coreos/rpm-ostree): includes, arch-include,
// conditional-include, variables, packages-<arch>, and the per-kind merge rules. Pure: every file
// is read through the injected reader, so tests and `plan --compose` need no disk.
//
// The type and shape of every value is pipeline/config/schema/treefile.schema.json's business, so
// a wrong type is reported at its file:line:col like any other config; this file holds the rest:
// which keys exist, includes, variables, conditions, merging, and the rules a type cannot say.
//
// Where rpm-ostree silently does something surprising (ignores a key in an inline treefile, keeps a
// literal `${undefined}`, accepts unknown keys in JSON), we reject the input instead, so what we
// flatten is always exactly what rpm-ostree composes. Each such rule is marked "stricter".
import { dirname, extname, isAbsolute, join, normalize, relative } from 'node:path';
import treefileSchema from '../config/schema/treefile.schema.json' with { type: 'json' };
import { compileSchema, type JsonPath, parseYaml, type SourceFile, schemaIssues } from '../config/yaml.ts';
import { ConfigError, type ConfigIssue } from '../errors.ts';
import { sortKeys } from '../files.ts';

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

/**
 * How treefile_merge (rust/src/treefile.rs:430 @d5ef5f0c) folds an included file's value into
 * the including file's. The including file is `dest`, the included one `src`:
 * - scalar: merge_basic_field (rust/src/treefile.rs:384 @d5ef5f0c), the first value set wins, so
 *   the including file beats its includes and an earlier include beats a later one;
 * - vec: merge_vec_field (rust/src/treefile.rs:393 @d5ef5f0c), the included entries come first;
 * - map: merge_map_field (rust/src/treefile.rs:404 @d5ef5f0c), per key, the including file wins;
 * - set: merge_hashset_field (rust/src/treefile.rs:417 @d5ef5f0c), the sorted union;
 * - repo-packages: a vec, then handle_repo_packages_overrides (rust/src/treefile.rs:3013 @d5ef5f0c);
 * - none: absent from treefile_merge, so only the root file's value counts;
 * - consumed: read while parsing (includes, variables), never merged or printed.
 */
type Merge = 'scalar' | 'vec' | 'map' | 'set' | 'none' | 'consumed' | 'repo-packages';

// Every key BaseComposeConfigFields / TreeComposeConfig accept, in serde's serialization order
// (that order is the order of `--print-only` output), with its merge rule. Value types are not
// here but in pipeline/config/schema/treefile.schema.json, which must list the same keys.
export const treefileKeys: Record<string, Merge> = {
  packages: 'set',
  'repo-packages': 'repo-packages',
  cliwrap: 'scalar',
  'cliwrap-binaries': 'vec',
  edition: 'scalar',
  ref: 'scalar',
  metadata: 'map',
  basearch: 'scalar',
  variables: 'consumed',
  repovars: 'map',
  rojig: 'scalar',
  repos: 'vec',
  'lockfile-repos': 'vec',
  selinux: 'scalar',
  'ignore-devices': 'scalar',
  'selinux-label-version': 'scalar',
  sysusers: 'scalar',
  ima: 'scalar',
  'gpg-key': 'scalar',
  include: 'consumed',
  'arch-include': 'consumed',
  'conditional-include': 'consumed',
  'bootstrap-packages': 'consumed',
  'ostree-layers': 'vec',
  'ostree-override-layers': 'vec',
  'exclude-packages': 'vec',
  'platform-module': 'none',
  container: 'scalar',
  recommends: 'scalar',
  documentation: 'scalar',
  'install-langs': 'vec',
  'initramfs-args': 'vec',
  'no-initramfs': 'scalar',
  'readonly-executables': 'scalar',
  'boot-location': 'scalar',
  'tmp-is-dir': 'scalar',
  'opt-usrlocal': 'scalar',
  units: 'vec',
  'default-target': 'scalar',
  'machineid-compat': 'scalar',
  releasever: 'scalar',
  'automatic-version-prefix': 'scalar',
  'automatic-version-suffix': 'scalar',
  'mutate-os-release': 'scalar',
  'etc-group-members': 'vec',
  'preserve-passwd': 'scalar',
  'check-passwd': 'scalar',
  'check-groups': 'scalar',
  'ignore-removed-users': 'set',
  'ignore-removed-groups': 'set',
  'postprocess-script': 'scalar',
  postprocess: 'vec',
  'add-files': 'vec',
  'remove-files': 'vec',
  'remove-from-packages': 'vec',
  'add-commit-metadata': 'map',
  'repo-metadata': 'scalar',
  'advisories-metadata': 'scalar',
  rpmdb: 'scalar',
  'rpmdb-normalize': 'scalar',
  // A Vec, but merged among the basic fields, container_cmd (rust/src/treefile.rs:467 @d5ef5f0c):
  // the first file that sets it wins whole.
  'container-cmd': 'scalar',
};

/**
 * serde aliases the schema accepts; rpm-ostree prints the variant's own name, so we do too:
 * stateoverlay (rust/src/treefile.rs:2460 @d5ef5f0c) and b-d-b (rust/src/treefile.rs:2486 @d5ef5f0c).
 */
const enumAliases: Record<string, Record<string, string>> = {
  'opt-usrlocal': { stateoverlay: 'state-overlay' },
  rpmdb: { 'b-d-b': 'bdb' },
};

/**
 * Old underscore spellings rpm-ostree still reads, LegacyTreeComposeConfigFields (rust/src/treefile.rs:2719
 * @d5ef5f0c), moved to the new key by migrate_legacy_fields (rust/src/treefile.rs:2896 @d5ef5f0c),
 * which refuses a file that sets both.
 */
export const legacyKeys: Record<string, string> = {
  gpg_key: 'gpg-key',
  boot_location: 'boot-location',
  default_target: 'default-target',
  automatic_version_prefix: 'automatic-version-prefix',
};

/**
 * Client-side derivation keys, DeriveConfigFields (rust/src/treefile.rs:2810 @d5ef5f0c): rpm-ostree
 * knows them but a server compose rejects them.
 */
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

// INCLUDE_MAXDEPTH (rust/src/treefile.rs:55 @d5ef5f0c): a file at depth 50 may not include more.
const INCLUDE_MAXDEPTH = 50;
// Filled in from the compose, never set by a file: treefile_parse_stream refuses them in
// variables (rust/src/treefile.rs:122 @d5ef5f0c), validate_base_config (rust/src/treefile.rs:1504
// @d5ef5f0c) in repovars.
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
  // The caller's variables seed the map that treefile_parse_and_process (rust/src/treefile.rs:653
  // @d5ef5f0c) hands down the walk, and variables known first win (see parseRecurse).
  const root = parseRecurse(state, normalize(opts.file), [], 0);
  substituteVariables(state, root);
  const variables = Object.fromEntries([...state.variables].sort(([a], [b]) => cmp(a, b)));
  return {
    treefile: serialize(root, opts.basearch),
    variables,
    files: state.files,
    externals: state.externals,
  };
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

const validateTreefile = compileSchema(treefileSchema);

const TYPE_WORDS: Record<string, string> = {
  string: 'a string',
  boolean: 'a boolean',
  integer: 'an integer',
  number: 'a number',
  array: 'a list',
  object: 'a mapping',
  null: 'null',
};

/** ajv says `must be boolean,integer,string`; say it in the words of a YAML file. */
function typeWords(message: string): string {
  const m = /^must be ([a-z,]+)$/.exec(message);
  if (!m) return message;
  const words = m[1]!.split(',').map((t) => TYPE_WORDS[t] ?? t);
  const last = words.pop()!;
  return `must be ${words.length ? `${words.join(', ')} or ${last}` : last}`;
}

/** One file's issues in reading order: the schema's come in its key order, the rest in the file's. */
function byPosition(issues: ConfigIssue[]): ConfigIssue[] {
  return [...issues].sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0));
}

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
  // YAML and JSON both parse as YAML. rpm-ostree refuses unknown keys, left in its catch-all
  // extra (rust/src/treefile.rs:149 @d5ef5f0c), only in YAML; we refuse them in JSON too (stricter).
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
  // Value types and shapes, inline conditional-include treefiles included, come from the schema.
  const typeIssues = schemaIssues({ ...src, data }, validateTreefile).map((i) => ({
    ...i,
    message: `${i.rule === 'type' ? typeWords(i.message) : i.message}${suffix}`,
  }));
  issues.push(...typeIssues);
  if (!isObject(data)) throw new ConfigError(issues);
  const invalid = (path: JsonPath) => {
    const pointer = `/${path.map((s) => String(s).replace(/~/g, '~0').replace(/\//g, '~1')).join('/')}`;
    return typeIssues.some((i) => i.path === pointer || i.path.startsWith(`${pointer}/`));
  };

  const cfg = checkConfig(data, [], at, issues, {
    inline: false,
    basearch: state.opts.basearch,
    origin: src,
    shown,
    suffix,
    invalid,
  });

  const fileVars = new Map<string, VarValue>();
  for (const [k, v] of Object.entries(isObject(data.variables) ? data.variables : {})) {
    if (RESERVED_VARS.includes(k))
      issues.push(
        at(['variables', k], 'reserved-variable', `cannot define reserved variable '${k}'`, undefined, true),
      );
    else fileVars.set(k, v as VarValue);
  }
  // basearch (rust/src/treefile.rs:102 @d5ef5f0c) in a file must match the compose's.
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
  if (issues.length) throw new ConfigError(byPosition(issues));

  // Put basearch and releasever in this file's variables, as the auto-mirror (rust/src/treefile.rs:130
  // @d5ef5f0c) does, then fold them into the one map the whole walk shares: new_vars
  // (rust/src/treefile.rs:599 @d5ef5f0c) takes the known ones over its own, so a name already known
  // (from the caller, an including file, an earlier sibling or its includes) keeps its value.
  fileVars.set('basearch', state.opts.basearch);
  const rv = cfg.values.get('releasever');
  if (rv !== undefined) fileVars.set('releasever', rv as VarValue);
  for (const [k, v] of fileVars) if (!state.variables.has(k)) state.variables.set(k, v);

  // Includes: `include`, then the matching `arch-include`, then matching conditional files, in the
  // order of treefile_parse_recurse (rust/src/treefile.rs:578 @d5ef5f0c). Of arch_include
  // (rust/src/treefile.rs:602 @d5ef5f0c) only the compose's basearch entry is read.
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
    // conditional_include (rust/src/treefile.rs:612 @d5ef5f0c) is evaluated against the variables
    // known at this point, so a later sibling's variables are not seen. Every condition of a list is
    // evaluated, even after a false one, so type errors always surface: rpm-ostree's try_fold notes
    // we always evaluate (rust/src/treefile.rs:618 @d5ef5f0c).
    for (const { c, p } of list) {
      const result = evaluateCondition(c as string, state.variables);
      if (typeof result === 'object') {
        issues.push(at(p as JsonPath, result.rule, result.message, c));
        continue;
      }
      matches = matches && result;
    }
    if (!matches || issues.length) return;
    // An inline treefile merges right away, before any file include: Inlined (rust/src/treefile.rs:626
    // @d5ef5f0c). File names join the include list.
    if (isObject(e.include)) {
      const inline = checkConfig(e.include, ['conditional-include', i, 'include'], at, issues, {
        inline: true,
        basearch: state.opts.basearch,
        origin: src,
        shown,
        suffix,
        invalid,
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

  // Externals are resolved against this file's directory, as treefile_parse opens
  // postprocess_script (rust/src/treefile.rs:322 @d5ef5f0c) and the others.
  collectExternals(state, file, data, at);

  // Each include_path (rust/src/treefile.rs:633 @d5ef5f0c) is relative to the including file, parsed
  // one level deeper and merged into this file, in list order.
  for (const { name, path } of includes) {
    const pos = src.locate(path);
    const link: ChainLink = { file, line: pos.line, col: pos.col };
    const target = normalize(isAbsolute(name) ? name : join(dirname(file), name));
    // Checked per include, as with INCLUDE_MAXDEPTH (rust/src/treefile.rs:634 @d5ef5f0c): a file at
    // the last level may exist, but not include.
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
    // treefile_parse keeps seen_includes (rust/src/treefile.rs:289 @d5ef5f0c) for the whole walk: a
    // file seen before is refused, not only a loop along the chain.
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
  /** True when the schema already reported a problem at or below `path`. */
  invalid: (path: JsonPath) => boolean;
}

type At = (path: JsonPath, rule: string, message: string, value?: unknown, key?: boolean) => ConfigIssue;

/**
 * Checks the keys of one treefile mapping (a file or an inline include) and canonicalizes them.
 * Value types were checked by the schema; a key whose value it refused is skipped here.
 */
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

function knownKeyList(): string {
  const keys = Object.keys(treefileKeys).filter(
    (k) => treefileKeys[k] !== 'consumed' || k !== 'bootstrap-packages',
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

/**
 * The rules on one well-typed value that a type cannot say. Returns false when it added issues.
 */
function checkValue(
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
function checkRemoveRegexes(entries: string[][], p: JsonPath, at: At, issues: ConfigIssue[]): void {
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
function checkConditionSyntax(entries: unknown, p: JsonPath, at: At, issues: ConfigIssue[]): void {
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

/**
 * Merges `src` (an included treefile, or an inline one) into `dest` (the including file), key by
 * key as treefile_merge (rust/src/treefile.rs:430 @d5ef5f0c) does; see Merge for the rules.
 */
function mergeInto(dest: Config, src: Config): void {
  for (const [key, merge] of Object.entries(treefileKeys)) {
    const sv = src.values.get(key);
    if (sv === undefined) continue;
    const dv = dest.values.get(key);
    switch (merge) {
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
/**
 * The merged treefile as rpm-ostree's `--print-only` prints it: serde's field order of
 * TreeComposeConfig, maps sorted, and three things serde does that sorting would not:
 * - `basearch` is always there: every parsed file gets the compose's, in
 *   basearch (rust/src/treefile.rs:102 @d5ef5f0c), and it is printed when set, the field
 *   basearch (rust/src/treefile.rs:2557 @d5ef5f0c);
 * - `rojig` prints its fields in declaration order with `description` null when unset: struct
 *   Rojig (rust/src/treefile.rs:2201 @d5ef5f0c) has no skip_serializing_if;
 * - `check-passwd`/`check-groups` are internally tagged enums, serde's
 *   tag (rust/src/treefile.rs:2129 @d5ef5f0c), so `type` comes first.
 */
function serialize(cfg: Config, basearch: string): Record<string, unknown> {
  cfg.values.set('basearch', basearch);
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
    if (key === 'rojig') {
      const r = v as Record<string, unknown>;
      out[key] = { name: r.name, summary: r.summary, license: r.license, description: r.description ?? null };
    } else if (key === 'check-passwd' || key === 'check-groups') {
      const { type, ...rest } = v as Record<string, unknown>;
      out[key] = { type, ...(sortKeys(rest) as Record<string, unknown>) };
    } else out[key] = key === 'releasever' || key === 'packages' ? v : sortKeys(v);
  }
  return out;
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
