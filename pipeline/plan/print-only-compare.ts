// Compares our flattened treefile with what the real `rpm-ostree compose tree --print-only`
// printed for the same tree and arch (CI runs rpm-ostree on GitHub's runners). Pure.
//
// What rpm-ostree prints (coreos/rpm-ostree @d5ef5f0c): the builtin calls treefile_new and
// prettyprint_json_stdout before it looks at --repo or any repo (src/app/rpmostree-compose-builtin-tree.cxx:1572-1577),
// which is serde_json::to_writer_pretty of the parsed TreeComposeConfig (rust/src/treefile.rs:1541-1545):
// - struct fields in declaration order (TreeComposeConfig :2502, then the flattened derive and base
//   fields :2810, :2546); every map is a BTreeMap, so sorted; sets (packages, repo-packages'
//   packages) are BTreeSets, so sorted too; objects inside metadata values are serde_json Maps,
//   sorted as well, since serde_json is built without preserve_order (no indexmap among its
//   dependencies, Cargo.lock:3123-3131);
// - None fields are left out (skip_serializing_if), variables, repovars and conditional-include
//   never printed (skip_serializing, :2558-2561, :2590), include and arch-include taken while
//   parsing (:587-611), so absent;
// - added by rpm-ostree: `basearch` (the host's, :102-120) and `packages` in every parsed file,
//   empty included (:186-212); the flattener prints both itself;
// - the only unordered part is `extra` (a HashMap, :2701), which holds nothing for YAML (unknown
//   keys are refused, :149) once packages-<arch> are taken out (:261-264), and we refuse unknown
//   keys in JSON too.
// So nothing is normalised away: both sides are parsed as JSON (whitespace and the missing final
// newline do not matter) and compared value for value, and key order, which serde fixes, as well.

/** One place where the two treefiles differ, at an RFC 6901 JSON pointer. */
export interface TreefileDifference {
  path: string;
  /** missing: only rpm-ostree has it; extra: only we have it; value: both, unequal; order: same keys, other order. */
  kind: 'missing' | 'extra' | 'value' | 'order';
  ours?: unknown;
  rpmOstree?: unknown;
}

const pointer = (parts: (string | number)[]) =>
  parts.map((p) => `/${String(p).replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Every difference between our treefile and rpm-ostree's, in document order; [] when they agree. */
export function compareTreefiles(ours: unknown, rpmOstree: unknown): TreefileDifference[] {
  const out: TreefileDifference[] = [];
  const walk = (a: unknown, b: unknown, at: (string | number)[]) => {
    if (isObject(a) && isObject(b)) {
      const ka = Object.keys(a);
      const kb = Object.keys(b);
      for (const k of kb)
        if (!(k in a)) out.push({ path: pointer([...at, k]), kind: 'missing', rpmOstree: b[k] });
      for (const k of ka) if (!(k in b)) out.push({ path: pointer([...at, k]), kind: 'extra', ours: a[k] });
      const common = ka.filter((k) => k in b);
      const theirs = kb.filter((k) => k in a);
      if (common.join('\0') !== theirs.join('\0'))
        out.push({ path: pointer(at), kind: 'order', ours: common, rpmOstree: theirs });
      for (const k of common) walk(a[k], b[k], [...at, k]);
      return;
    }
    if (Array.isArray(a) && Array.isArray(b)) {
      for (let i = 0; i < Math.max(a.length, b.length); i++) {
        if (i >= a.length) out.push({ path: pointer([...at, i]), kind: 'missing', rpmOstree: b[i] });
        else if (i >= b.length) out.push({ path: pointer([...at, i]), kind: 'extra', ours: a[i] });
        else walk(a[i], b[i], [...at, i]);
      }
      return;
    }
    if (a !== b) out.push({ path: pointer(at), kind: 'value', ours: a, rpmOstree: b });
  };
  walk(ours, rpmOstree, []);
  return out;
}

/** One line per difference, for a CI log. */
export function formatDifferences(diffs: TreefileDifference[]): string {
  const show = (v: unknown) => JSON.stringify(v);
  return diffs
    .map((d) => {
      const where = d.path || '/';
      switch (d.kind) {
        case 'missing':
          return `${where}: only rpm-ostree has ${show(d.rpmOstree)}\n`;
        case 'extra':
          return `${where}: only rock-image has ${show(d.ours)}\n`;
        case 'order':
          return `${where}: key order differs: rock-image ${show(d.ours)}, rpm-ostree ${show(d.rpmOstree)}\n`;
        default:
          return `${where}: rock-image ${show(d.ours)}, rpm-ostree ${show(d.rpmOstree)}\n`;
      }
    })
    .join('');
}
