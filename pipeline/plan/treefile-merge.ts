// Folds included treefiles into the including one (treefile_merge's rules), substitutes variables
// and serializes the result in rpm-ostree's `--print-only` order. Pure.
import { ConfigError, type ConfigIssue } from '../errors.ts';
import { sortKeys } from '../files.ts';
import { type Config, cmp, type Origin, type State, treefileKeys } from './treefile-keys.ts';

/**
 * Merges `src` (an included treefile, or an inline one) into `dest` (the including file), key by
 * key as treefile_merge (rust/src/treefile.rs:430 @d5ef5f0c) does; see Merge for the rules.
 */
export function mergeInto(dest: Config, src: Config): void {
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

export interface RepoPackage {
  repo: string;
  packages: string[];
}

// envsubst semantics: a string is templated when it has `${` before a `}`; each `${name}` of a
// known variable is replaced. Stricter: a `${name}` left over is an error, not a literal.
export function substituteVariables(state: State, cfg: Config): void {
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
export function serialize(cfg: Config, basearch: string): Record<string, unknown> {
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
