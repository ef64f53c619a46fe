// The treefile keys rpm-ostree knows, how an include merges each, and the types the treefile
// modules share (treefile.ts flattens; treefile-check.ts checks one file; treefile-merge.ts merges,
// substitutes and serializes; treefile-condition.ts parses conditions). Pure.

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
export type Merge = 'scalar' | 'vec' | 'map' | 'set' | 'none' | 'consumed' | 'repo-packages';

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
export const enumAliases: Record<string, Record<string, string>> = {
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
export const INCLUDE_MAXDEPTH = 50;
// Filled in from the compose, never set by a file: treefile_parse_stream refuses them in
// variables (rust/src/treefile.rs:122 @d5ef5f0c), validate_base_config (rust/src/treefile.rs:1504
// @d5ef5f0c) in repovars.
export const RESERVED_VARS = ['basearch', 'releasever'];
/** Keys an inline conditional-include treefile cannot carry (rpm-ostree: external files; stricter: ignored keys). */
export const INLINE_FORBIDDEN: Record<string, string> = {
  'postprocess-script': 'refers to an external file, which inline treefiles do not support',
  'add-files': 'refers to external files, which inline treefiles do not support',
  include: 'is ignored by rpm-ostree inside an inline treefile; use a file',
  'arch-include': 'is ignored by rpm-ostree inside an inline treefile; use a file',
  'conditional-include': 'is ignored by rpm-ostree inside an inline treefile; use a file',
  variables: 'is ignored by rpm-ostree inside an inline treefile; define it in a file',
  'bootstrap-packages': 'is ignored by rpm-ostree inside an inline treefile; use packages',
};

/** One step of the include chain: the file and where in it the next file was included. */
export interface ChainLink {
  file: string;
  line?: number;
  col?: number;
}

export interface Origin {
  file: string;
  line: number;
  col: number;
  chain: string;
}

/** A parsed treefile: canonical keys, plus where each substitutable string came from. */
export interface Config {
  values: Map<string, unknown>;
  origins: Map<string, Origin>;
}

export interface State {
  opts: FlattenOptions;
  displayRoot: string;
  seen: Map<string, string>;
  variables: Map<string, VarValue>;
  files: string[];
  externals: ExternalFile[];
}

export const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
export function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}
