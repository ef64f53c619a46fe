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
import { type JsonPath, parseYaml, schemaIssues } from '../config/yaml.ts';
import { ConfigError, type ConfigIssue } from '../errors.ts';
import { type At, byPosition, checkConfig, typeWords, validateTreefile } from './treefile-check.ts';
import { evaluateCondition } from './treefile-condition.ts';
import {
  type ChainLink,
  type Config,
  cmp,
  type ExternalFile,
  type FlattenOptions,
  type FlattenResult,
  INCLUDE_MAXDEPTH,
  isObject,
  RESERVED_VARS,
  type State,
  type VarValue,
} from './treefile-keys.ts';
import { mergeInto, serialize, substituteVariables } from './treefile-merge.ts';

export { evaluateCondition, parseCondition, splitPackages } from './treefile-condition.ts';
export {
  deriveKeys,
  type ExternalFile,
  type FlattenOptions,
  type FlattenResult,
  legacyKeys,
  type ReadFile,
  treefileKeys,
  type VarValue,
} from './treefile-keys.ts';

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
