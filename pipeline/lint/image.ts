// The project's own lint of a built image, run on the mounted root after every build: labels,
// os-release, prepare-root.conf, kargs TOML, nothing new under /var, unit files parse, tmpfiles
// syntax, executables executable. Upstream `bootc container lint` runs inside the build as well
// when the image has bootc.
import { existsSync, lstatSync } from 'node:fs';
import { listTree, readInRoot, resolveInRoot } from '../exec/rootfs.ts';
import { IGNITION_BASE_PATH, IGNITION_DRACUT_MODULE } from '../plan/build-context.ts';
import type { ArchPlan, BuildPlan } from '../plan/build-plan.ts';
import { BOUND_IMAGES_DIR, isDigestRef, quadletImage } from '../plan/image-pins.ts';
import { parseOsRelease } from '../plan/render.ts';
import { parseUnitFile } from './unit-file.ts';

export interface LintFinding {
  check: string;
  path?: string;
  message: string;
}

const requiredLabels = [
  'containers.bootc',
  'ostree.bootable',
  'com.coreos.stream',
  'com.coreos.osname',
  'com.coreos.inputhash',
  'org.opencontainers.image.version',
  'org.opencontainers.image.title',
  'org.opencontainers.image.description',
  'org.opencontainers.image.source',
  'org.opencontainers.image.revision',
  'org.opencontainers.image.created',
];

const composefsModes = ['true', 'false', 'yes', 'no', 'maybe', 'verity', 'signed'];

export function lintImage(
  root: string,
  labels: Record<string, string>,
  arch: ArchPlan,
  plan: Pick<BuildPlan, 'stream' | 'version'>,
): LintFinding[] {
  const findings: LintFinding[] = [];
  const fail = (check: string, message: string, path?: string) => findings.push({ check, message, path });

  // Labels.
  for (const l of requiredLabels) if (!labels[l]) fail('labels', `label ${l} missing`);
  if (labels['containers.bootc'] && labels['containers.bootc'] !== '1')
    fail('labels', 'containers.bootc must be 1');
  if (labels['com.coreos.stream'] && labels['com.coreos.stream'] !== plan.stream)
    fail('labels', `com.coreos.stream is ${labels['com.coreos.stream']}, expected ${plan.stream}`);
  if (
    labels['org.opencontainers.image.version'] &&
    labels['org.opencontainers.image.version'] !== plan.version
  )
    fail('labels', 'version label does not match the build version');
  if (labels['com.coreos.inputhash'] && labels['com.coreos.inputhash'] !== arch.inputHash)
    fail('labels', 'input-hash label does not match the plan');

  // os-release: identity set, base ID/VERSION_ID kept.
  const osr = readInRoot(root, '/etc/os-release') ?? readInRoot(root, '/usr/lib/os-release');
  if (!osr) fail('os-release', 'no /etc/os-release or /usr/lib/os-release');
  else {
    const got = Object.fromEntries(parseOsRelease(osr));
    const base = Object.fromEntries(parseOsRelease(arch.base.osRelease));
    if (got.VARIANT_ID !== 'rocknsm')
      fail('os-release', `VARIANT_ID is ${got.VARIANT_ID}, expected rocknsm`, '/etc/os-release');
    if (got.IMAGE_VERSION !== plan.version)
      fail(
        'os-release',
        `IMAGE_VERSION is ${got.IMAGE_VERSION}, expected ${plan.version}`,
        '/etc/os-release',
      );
    for (const k of ['ID', 'VERSION_ID'])
      if (got[k] !== base[k])
        fail('os-release', `${k} changed from the base's ${base[k]} to ${got[k]}`, '/etc/os-release');
  }

  // prepare-root.conf.
  const prc = readInRoot(root, '/usr/lib/ostree/prepare-root.conf');
  if (!prc) fail('composefs', 'no /usr/lib/ostree/prepare-root.conf');
  else {
    const m = /^\[composefs\][^[]*^enabled\s*=\s*(\S+)\s*$/m.exec(prc);
    if (!m) fail('composefs', '[composefs] enabled = ... missing', '/usr/lib/ostree/prepare-root.conf');
    else if (!composefsModes.includes(m[1]!))
      fail(
        'composefs',
        `enabled = ${m[1]} is not one of ${composefsModes.join(', ')}`,
        '/usr/lib/ostree/prepare-root.conf',
      );
    else if (m[1] === 'signed' && !/^keypath\s*=\s*\/\S+$/m.test(prc))
      fail('composefs', 'enabled = signed needs keypath', '/usr/lib/ostree/prepare-root.conf');
  }

  // kargs.d: strict format.
  for (const p of listTree(root, '/usr/lib/bootc/kargs.d')) {
    if (!p.endsWith('.toml')) continue;
    const problem = checkKargsToml(readInRoot(root, p) ?? '');
    if (problem) fail('kargs', problem, p);
  }

  // Nothing new under /var (it is only unpacked at first install: use tmpfiles.d).
  const baseVar = new Set(arch.base.varEntries);
  for (const p of listTree(root, '/var'))
    if (!baseVar.has(p))
      fail('var', 'content under /var is not updated on sensors; ship it through tmpfiles.d', p);

  // Files this build added: present, units parse, tmpfiles syntax, scripts executable.
  for (const p of arch.addedPaths) {
    const host = `${root}${p}`;
    if (!existsSync(host) && !isLink(host)) {
      fail('files', 'missing from the image', p);
      continue;
    }
    // Units and their drop-ins (<unit>.d/*.conf); not the manager's own system.conf.d/*.conf.
    const unitType = '(service|target|mount|socket|timer|path|container|volume|network|kube|pod|image|build)';
    if (new RegExp(`\\.${unitType}$`).test(p) || new RegExp(`[./]${unitType}\\.d/[^/]+\\.conf$`).test(p)) {
      const text = readInRoot(root, p) ?? '';
      for (const issue of parseUnitFile(text, p).issues)
        fail('units', `line ${issue.line}: ${issue.message}`, p);
    }
    if (p.startsWith('/usr/lib/tmpfiles.d/')) {
      (readInRoot(root, p) ?? '').split('\n').forEach((line, i) => {
        if (line.trim() && !line.startsWith('#') && !/^[a-zA-Z][+!=~^-]*\s+\/\S*(\s+\S+){0,5}$/.test(line))
          fail('tmpfiles', `line ${i + 1} is not a tmpfiles.d entry`, p);
      });
    }
    if (/^\/usr\/(s?bin|libexec)\//.test(p) && !isLink(host) && (lstatSync(host).mode & 0o111) === 0)
      fail('files', 'not executable', p);
  }
  if (!resolveInRoot(root, '/usr/lib/os-release')) fail('os-release', 'missing /usr/lib/os-release');
  for (const f of lintBoundImages(root)) findings.push(f);
  return findings;
}

/**
 * /usr/lib/bootc/bound-images.d as bootc reads it (bootc-dev/bootc crates/lib/src/boundimage.rs
 * @534c76ea474a356aa288f6767635e579ea2614d5): only symlinks (:97-99), named `*.container` or
 * `*.image` (:106-113), resolved inside the root (:78-80, :103), to a file with `[Container]` or
 * `[Image]` `Image=` (:137-161) free of systemd specifiers (`%%` only, :222-241). Ours also by
 * digest: bootc does not pull an image its storage already has (:186-189), so a tag never moves.
 */
export function lintBoundImages(root: string): LintFinding[] {
  const findings: LintFinding[] = [];
  const fail = (message: string, path: string) => findings.push({ check: 'bound-images', message, path });
  for (const p of listTree(root, BOUND_IMAGES_DIR)) {
    if (p.slice(BOUND_IMAGES_DIR.length + 1).includes('/')) continue;
    const ext = /\.(container|image)$/.exec(p)?.[1];
    if (!isLink(`${root}${p}`)) fail('not a symlink (bootc accepts only links to quadlet files)', p);
    else if (!ext) fail('bootc reads only links named *.container or *.image', p);
    else {
      const text = readInRoot(root, p);
      if (text === undefined) {
        fail('the link does not resolve to a file inside the image', p);
        continue;
      }
      const image = quadletImage(text, ext === 'container' ? 'Container' : 'Image');
      if (!image) fail(`no Image= in the [${ext === 'container' ? 'Container' : 'Image'}] section`, p);
      else if (image.replace(/%%/g, '').includes('%'))
        fail(`Image=${image}: bootc refuses systemd specifiers`, p);
      else if (!isDigestRef(image)) fail(`Image=${image} is not pinned by digest`, p);
    }
  }
  return findings;
}

/**
 * The initramfs the build regenerated carries what the boot needs: ostree-prepare-root (dracut
 * includes ostree's module only when asked, and leaves a module out with a log line when its
 * dependencies are missing) and, when the image has one, the Ignition base config at the place
 * Ignition reads it. `names`: the initramfs entries (exec/initramfs.ts).
 */
export function lintInitramfs(names: Set<string>, arch: ArchPlan, initramfs: string): LintFinding[] {
  const findings: LintFinding[] = [];
  if (!names.has('usr/lib/ostree/ostree-prepare-root'))
    findings.push({
      check: 'initramfs',
      path: initramfs,
      message:
        "no usr/lib/ostree/ostree-prepare-root: dracut left out ostree's module, so the boot cannot find the deployment",
    });
  else if (!names.has('usr/lib/ostree/prepare-root.conf'))
    findings.push({
      check: 'initramfs',
      path: initramfs,
      message: 'no usr/lib/ostree/prepare-root.conf: ostree-prepare-root would not see the composefs setting',
    });
  const module = arch.addedPaths.find(
    (p) => p.startsWith(`${IGNITION_DRACUT_MODULE}/`) && p.endsWith('.ign'),
  );
  if (module && !names.has(IGNITION_BASE_PATH.slice(1)))
    findings.push({
      check: 'initramfs',
      path: initramfs,
      message: `no ${IGNITION_BASE_PATH.slice(1)}: dracut left out ${IGNITION_DRACUT_MODULE.split('/').pop()} (it needs the base's ignition module, and that module's own dependencies), so sensors would get no data partitions`,
    });
  return findings;
}

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/** bootc kargs.d files: only `kargs = [strings]` and `match-architectures = [strings]`. */
export function checkKargsToml(text: string): string | undefined {
  const keys = new Set<string>();
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^([A-Za-z0-9_-]+)\s*=\s*\[(.*)\]$/.exec(line);
    if (!m) return `line ${i + 1}: expected key = ["...", ...]`;
    const key = m[1]!;
    if (key !== 'kargs' && key !== 'match-architectures') return `line ${i + 1}: unknown key '${key}'`;
    if (keys.has(key)) return `line ${i + 1}: duplicate key '${key}'`;
    keys.add(key);
    const items = m[2]!.trim();
    if (items && !/^"[^"\\]*"(\s*,\s*"[^"\\]*")*\s*,?$/.test(items))
      return `line ${i + 1}: values must be double-quoted strings`;
  }
  if (!keys.has('kargs')) return 'missing kargs';
  return undefined;
}
