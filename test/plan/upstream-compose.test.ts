// The compose against its real consumers' sources, which cannot run here (rpm-ostree is Fedora's):
// - `rock-image compose --print-only` on the real fedora-coreos-config, overrides file and all,
//   for both arches;
// - every flag of our rpm-ostree command lines is one rpm-ostree declares, read from its source;
// - the override rules and the builder's packages are the ones fedora-coreos-config and
//   coreos-assembler state, read from their files at the cited commits;
// - the podman command line runs the builder as coreos-assembler runs its own, with flags and
//   values podman declares.
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compose } from '../../pipeline/commands/compose.ts';
import type { Context } from '../../pipeline/commands/types.ts';
import { BUILDER_PACKAGES, type ComposeRequest, planCompose } from '../../pipeline/exec/rpm-ostree.ts';
import { createLogger } from '../../pipeline/log.ts';
import { FCOS_SPECIFIC_SOURCES, parseOverrides } from '../../pipeline/plan/lockfile.ts';
import { flattenTreefile } from '../../pipeline/plan/treefile.ts';
import { repoRoot } from '../world/fcos-base.ts';
import { file, lines, tree } from '../world/upstream.ts';

const FCC = '2d0fce6d5cfd5198c27e131757ecb934e1b092e7';
const RPMOSTREE = 'd5ef5f0cb5ace53f40a8d92933cc87e69ad8c7f4';
const COSA = '05db482e6439a502bc94f56d3ae11c7f8189c459';
const BOOTC = '8e2cf08ae02e99dba3db0fc3ab3be1c4a664c929';
const PODMAN = 'c6580b4a5219c9efb9ab79a540637d8a58b736f8';

const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : undefined);

function context() {
  let out = '';
  const calls: string[][] = [];
  const ctx: Context = {
    root: repoRoot,
    cwd: repoRoot,
    env: {},
    now: () => Date.UTC(2026, 10, 30),
    log: createLogger({ mode: 'plain', out: { write: () => true } }),
    run: async (cmd, args) => {
      calls.push([cmd, ...args]);
      return { stdout: '', stderr: '', exitCode: 0 };
    },
    stdout: { write: (s: string) => (out += s) },
    cores: 2,
  };
  return { ctx, calls, out: () => out };
}

/** The fields of a clap derive struct in declaration order: `long` as clap names the option, or none (positional). */
function clapFields(source: string, struct: string): { field: string; long?: string }[] {
  const start = source.indexOf(`struct ${struct} {`);
  assert.ok(start >= 0, `struct ${struct}`);
  const body = source.slice(start, source.indexOf('\n}\n', start));
  const out: { field: string; long?: string }[] = [];
  let attrs = '';
  for (const line of body.split('\n').slice(1)) {
    const field = /^ {4}(?:pub(?:\([a-z]+\))? )?(\w+):/.exec(line);
    if (!field) {
      if (/^\s*#\[(clap|arg)\(/.test(line)) attrs += line;
      continue;
    }
    const long = /\blong\b/.test(attrs)
      ? ((/\blong\s*=\s*"([^"]+)"/.exec(attrs) ?? /\bname\s*=\s*"([^"]+)"/.exec(attrs))?.[1] ??
        field[1]!.replace(/_/g, '-'))
      : undefined;
    assert.not.ok(/\bshort\b/.test(attrs) && !long, `${struct}.${field[1]}: short-only option`);
    out.push({ field: field[1]!, long });
    attrs = '';
  }
  return out;
}

/** The long options of a clap struct. */
const clapLongs = (source: string, struct: string) =>
  new Set(
    clapFields(source, struct)
      .map((f) => f.long)
      .filter((l) => l !== undefined),
  );

/** The positional arguments of a clap struct, in the order clap takes them (declaration order). */
const clapPositionals = (source: string, struct: string) =>
  clapFields(source, struct)
    .filter((f) => f.long === undefined)
    .map((f) => f.field);

/** Our own compose request for manifests/compose (x86_64), as the tests below plan it. */
function ourRequest(over: Partial<ComposeRequest> = {}): ComposeRequest {
  const config = `${repoRoot}/manifests/compose`;
  const variables = { stream: 'stable', prod: true };
  return {
    stream: 'stable',
    arch: 'x86_64',
    treefile: `${config}/manifest.yaml`,
    variables,
    flattened: flattenTreefile({ file: `${config}/manifest.yaml`, basearch: 'x86_64', read, variables }),
    outputDir: '/o',
    workDir: '/w',
    cacheDir: '/c',
    lockfiles: [`${config}/manifest-lock.x86_64.json`],
    repoFiles: [],
    mode: 'host',
    flow: 'image',
    builderImage: 'b',
    strict: true,
    labels: { a: 'b' },
    ...over,
  };
}

test('the real fedora-coreos-config composes (--print-only) for both arches, its overrides file included', async () => {
  const config = await tree('coreos/fedora-coreos-config', FCC);
  const { ctx, calls, out } = context();
  const code = await compose.run(
    ctx,
    {
      stream: 'stable',
      treefile: `${config}/manifest.yaml`,
      arch: ['x86_64', 'aarch64'],
      'print-only': true,
      mode: 'host',
      output: '/tmp/fcc-out',
    },
    [],
  );
  assert.is(code, 0);
  assert.equal(calls, []);
  const text = out();
  for (const arch of ['x86_64', 'aarch64']) {
    assert.match(text, `# ${arch}: flattened treefile (rpm-ostree compose tree --print-only)`);
    // Its own lockfile, then the overrides (a fast-track of ignition with no reason among them).
    assert.match(
      text,
      `--lockfile=${config}/manifest-lock.${arch}.json --lockfile=${config}/manifest-lock.overrides.yaml`,
    );
  }
  // The arch's own pieces: packages-<arch> and arch-include, resolved per arch.
  const flat = (arch: string) =>
    flattenTreefile({
      file: `${config}/manifest.yaml`,
      basearch: arch,
      read,
      variables: { stream: 'stable', prod: true },
    }).treefile as { packages: string[] };
  const x86 = flat('x86_64').packages;
  const arm = flat('aarch64').packages;
  assert.ok(x86.includes('grub2-efi-x64') && !arm.includes('grub2-efi-x64'), 'x86_64 EFI GRUB');
  assert.ok(arm.includes('grub2-efi-aa64') && !x86.includes('grub2-efi-aa64'), 'aarch64 EFI GRUB');
  for (const p of ['ignition', 'rpm-ostree', 'kernel']) assert.ok(x86.includes(p) && arm.includes(p), p);
  // Upstream's overrides file as it is: ignition fast-tracked with a Bodhi URL and no reason.
  assert.match(
    await lines('coreos/fedora-coreos-config', FCC, 'manifest-lock.overrides.yaml', 12, 16),
    /ignition:\n {4}evr: .*\n {4}metadata:\n {6}bodhi: https:\/\/bodhi\.fedoraproject\.org\/updates\/\S+\n {6}type: fast-track/,
  );
});

test("override rules: fedora-coreos-config's own tool (ci/overrides.py)", async () => {
  const py = (from: number, to?: number) =>
    lines('coreos/fedora-coreos-config', FCC, 'ci/overrides.py', from, to);
  // :20-31 the sources whose fast-tracks need no reason; ours is the same list.
  const trivial = [...(await py(20, 31)).matchAll(/^\s+'([^']+)',/gm)].map((m) => m[1]);
  assert.equal(trivial, FCOS_SPECIFIC_SOURCES);
  assert.match(await py(96, 99), /if not args\.reason and source_name not in TRIVIAL_FAST_TRACKS:\n\s+raise/);
  // :69 a pin's reason is required; :359-362 a URL is http(s).
  assert.match(await py(69), /pin\.add_argument\('-r', '--reason', required=True,/);
  assert.match(await py(359, 362), /if p\.scheme not in \('http', 'https'\):\n\s+raise/);
  // :103-106 a fast-track always records its Bodhi URL.
  assert.match(await py(103, 106), /type='fast-track',\n\s+bodhi=update\['url'\],/);
  const ignition = `packages:\n  ignition:\n    evr: 2.20.0-1.fc40\n    metadata:\n${await lines('coreos/fedora-coreos-config', FCC, 'manifest-lock.overrides.yaml', 15, 16)}\n`;
  assert.equal(Object.keys(parseOverrides(ignition, 'o.yaml').packages), ['ignition']);
});

test('rpm-ostree declares every flag of our compose command lines and takes their positionals in our order', async () => {
  const rs = await file('coreos/rpm-ostree', RPMOSTREE, 'rust/src/compose.rs');
  const crs = await file('coreos/rpm-ostree', RPMOSTREE, 'rust/src/container.rs');
  const cxx = await file('coreos/rpm-ostree', RPMOSTREE, 'src/app/rpmostree-compose-builtin-tree.cxx');
  const image = clapLongs(rs, 'ComposeImageOpts');
  const encapsulate = clapLongs(crs, 'ContainerEncapsulateOpts');
  // A sanity check of the reader on the structs' lines as cited in pipeline/exec/rpm-ostree.ts.
  for (const f of ['initialize-mode', 'touch-if-changed', 'force-nocache', 'lockfile', 'label', 'layer-repo'])
    assert.ok(image.has(f), `${f} in ${[...image].join(' ')}`);
  for (const f of ['repo', 'label', 'previous-build-manifest'])
    assert.ok(encapsulate.has(f), `${f} in ${[...encapsulate].join(' ')}`);
  const treeOpts = new Set([...cxx.matchAll(/\{\s*"([a-z][a-z-]*)",\s*(?:0|'[a-z]'),/g)].map((m) => m[1]!));
  const declared: Record<string, Set<string>> = {
    image,
    tree: treeOpts,
    'container-encapsulate': encapsulate,
  };

  // Positionals: clap takes them in declaration order (compose.rs:179-185: manifest, output;
  // container.rs:47-52: ostree_ref, imgref); compose tree takes TREEFILE (its GOption context,
  // rpmostree-compose-builtin-tree.cxx:1553, argv[1] after the options, :1563-1569).
  assert.equal(clapPositionals(rs, 'ComposeImageOpts'), ['manifest', 'output']);
  assert.equal(clapPositionals(crs, 'ContainerEncapsulateOpts'), ['ostree_ref', 'imgref']);
  assert.match(
    await lines('coreos/rpm-ostree', RPMOSTREE, 'src/app/rpmostree-compose-builtin-tree.cxx', 1553),
    /g_option_context_new \("TREEFILE"\)/,
  );
  assert.match(
    await lines('coreos/rpm-ostree', RPMOSTREE, 'src/app/rpmostree-compose-builtin-tree.cxx', 1563, 1569),
    /if \(argc < 2\)[\s\S]*const char \*treefile_path = argv\[1\];/,
  );
  // rpm-ostree's own compose image calls container-encapsulate the same way: `--repo REPO
  // <commit> <target>` (compose.rs:1366-1377).
  assert.match(
    await lines('coreos/rpm-ostree', RPMOSTREE, 'rust/src/compose.rs', 1366, 1377),
    /\.args\(\["compose", "container-encapsulate"\]\)[\s\S]*"--repo",\n\s+repo\.as_str\(\),\n\s+commitid\.as_str\(\),\n\s+tempdest\.as_deref\(\)\.unwrap_or\(target_imgref\.as_str\(\)\),/,
  );

  const flags = (argv: string[]) =>
    argv.filter((a) => a.startsWith('--')).map((a) => a.slice(2).split('=')[0]!);
  // Every option we pass carries its value after `=`: what is left are the positionals.
  const positionals = (argv: string[]) => argv.slice(3).filter((a) => !a.startsWith('-'));
  let imgref = '';
  for (const flow of ['image', 'tree'] as const)
    for (const [force, previousBuild] of [
      [false, false],
      [true, true],
    ]) {
      const p = planCompose(ourRequest({ flow, force, previousBuild }));
      if (flow === 'tree') assert.is(p.previousManifest !== undefined, previousBuild);
      const rpmOstree = p.steps.filter((s) => s[0] === 'rpm-ostree');
      assert.equal(
        rpmOstree.map((s) => s[2]),
        flow === 'image' ? ['image'] : ['tree', 'container-encapsulate'],
      );
      for (const step of rpmOstree)
        for (const f of flags(step))
          assert.ok(declared[step[2]!]!.has(f), `rpm-ostree compose ${step[2]} has no --${f}`);
      const [composeStep, encapsulateStep] = rpmOstree as [string[], string[] | undefined];
      if (flow === 'image') {
        assert.equal(positionals(composeStep), [p.wrapper.path, p.outputs.archive]);
        // --initialize conflicts with --initialize-mode (compose.rs:122, :127); if-not-exists is
        // the InitializeMode value that keeps the previous image's layer plan (:69-91).
        assert.not.ok(composeStep.includes('--initialize'));
        assert.match(rs, /InitializeMode::IfNotExists => "if-not-exists"/);
        assert.match(
          rs,
          /\(InitializeMode::IfNotExists \| InitializeMode::Query, Some\(oi\)\) => \{\n\s+Some\(fetch_previous_metadata/,
        );
        assert.ok(
          composeStep.includes('--format=ociarchive') && /enum OutputFormat \{\n\s+Ociarchive,/.test(rs),
        );
      } else {
        assert.equal(positionals(composeStep), [p.wrapper.path]);
        assert.equal(positionals(encapsulateStep!), [
          'rocknsm/x86_64/base/stable',
          `oci-archive:${p.outputs.archive}`,
        ]);
        imgref = positionals(encapsulateStep!)[1]!;
      }
    }
  // The image reference is parsed by ostree-ext (container.rs:51 parse_base_imgref), pinned by
  // rpm-ostree from containers/bootc (Cargo.toml:76); read at the bootc commit mirrored here, which
  // is older than the pin: `<transport>:<name>` split at the first ':' (container/mod.rs:143-163),
  // `oci-archive` the OciArchive transport (:113, :124).
  assert.match(
    await lines('coreos/rpm-ostree', RPMOSTREE, 'Cargo.toml', 76),
    /^ostree-ext = \{ git = "https:\/\/github\.com\/containers\/bootc"/,
  );
  const mod = (from: number, to?: number) =>
    lines('containers/bootc', BOOTC, 'ostree-ext/src/container/mod.rs', from, to);
  assert.match(await mod(143, 150), /let \(transport_name, mut name\) = value\n\s+\.split_once\(':'\)/);
  assert.match(await mod(113), /Self::OCI_ARCHIVE_STR => Self::OciArchive,/);
  const transport = /"([a-z-]+)"/.exec(await mod(124))?.[1];
  assert.match(await mod(124), /const OCI_ARCHIVE_STR: &'static str = "oci-archive";/);
  assert.is(imgref.slice(0, imgref.indexOf(':')), transport);
});

test('the builder installs what the compose reads: distribution-gpg-keys (coreos-assembler installs it)', async () => {
  assert.match(
    await lines('coreos/fedora-coreos-config', FCC, 'fedora.repo', 14),
    /^gpgkey=file:\/\/\/usr\/share\/distribution-gpg-keys\//,
  );
  assert.is(await lines('coreos/coreos-assembler', COSA, 'rpms.in.yaml', 61), '  - distribution-gpg-keys');
  assert.ok(BUILDER_PACKAGES.includes('distribution-gpg-keys') && BUILDER_PACKAGES.includes('rpm-ostree'));
});

test("what manifests/compose/README.md says of coreos-assembler's builder packages: installed into its image, locked only for hermetic builds", async () => {
  const cosa = (path: string, from: number, to?: number) =>
    lines('coreos/coreos-assembler', COSA, path, from, to);
  assert.is(await cosa('Dockerfile', 3), 'FROM quay.io/fedora/fedora:43');
  assert.is(await cosa('Dockerfile', 15), 'RUN ./build.sh install_rpms');
  assert.match(
    await cosa('Dockerfile', 5, 6),
    /enabled by Konflux to build the container image hermatically\.\nARG NO_NETWORK=0/,
  );
  assert.match(await cosa('build.sh', 56), /^install_rpms\(\) \{/);
  assert.match(await cosa('build.sh', 63), /\[ "\$\{NO_NETWORK:-0\}" == "0" \] && yum -y distro-sync/);
  assert.match(
    await cosa('ci/hermetic/update_rpms_lockfile', 51),
    /^rpm-lockfile-prototype \$\{REPO_ROOT\}\/rpms\.in\.yaml --outfile \$\{REPO_ROOT\}\/rpms\.lock\.yaml/,
  );
  assert.match(
    await cosa('rpms.lock.yaml', 6545, 6551),
    /url: \S+\/rpm-ostree-2026\.1-3\.fc43\.x86_64\.rpm\n.*\n.*\n\s+checksum: sha256:[0-9a-f]{64}\n\s+name: rpm-ostree\n\s+evr: 2026\.1-3\.fc43/,
  );
  assert.match(await cosa('rpms.in.yaml', 24, 27), /\narches:\n {2}- x86_64$/);
  assert.match(
    await cosa('docs/building-fcos.md', 85),
    /COREOS_ASSEMBLER_CONTAINER_LATEST="quay\.io\/coreos-assembler\/coreos-assembler:latest"/,
  );
  assert.match(await cosa('docs/building-fcos.md', 89, 95), /60\*60\*24\*7[\s\S]*more than a week old/);
});

test("the podman command line: coreos-assembler's way of running its builder, flags podman declares", async () => {
  const cosa = (path: string, from: number, to?: number) =>
    lines('coreos/coreos-assembler', COSA, path, from, to);
  const podmanDoc = (name: string, from: number, to?: number) =>
    lines('containers/podman', PODMAN, `docs/source/markdown/options/${name}.md`, from, to);
  const config = `${repoRoot}/manifests/compose`;
  const argv = planCompose(ourRequest({ mode: 'container', builderImage: 'builder' })).podman!;
  const image = argv.indexOf('builder');
  assert.equal(argv.slice(image), ['builder', 'bash', '/srv/work/compose.sh']);
  const options = argv.slice(1, image);

  // cosa's `cosa()` function (docs/building-fcos.md:99-104) and why each flag (:118-120).
  const run = await cosa('docs/building-fcos.md', 99, 104);
  const cosaArgs = run.trim().split(/\s+/);
  assert.equal(cosaArgs.slice(0, 2), ['podman', 'run']);
  assert.is(argv[0], 'run');
  for (const f of ['--rm', '--privileged', '--security-opt=label=disable'])
    assert.ok(cosaArgs.includes(f) && options.includes(f), f);
  assert.match(await cosa('docs/building-fcos.md', 119), /^- `--privileged`:/);
  assert.match(
    await cosa('docs/building-fcos.md', 120),
    /^- `--security-opt label:disable`: Disable SELinux isolation so we don't need to relabel the build directory/,
  );
  // Privileges are what let cosa run rpm-ostree in its container rather than in a VM.
  assert.match(
    await cosa('src/cmdlib.sh', 45, 58),
    /elif ! capsh --print \| grep -q 'Bounding.*cap_sys_admin'; then\n\s+info "Missing CAP_SYS_ADMIN; using virt"/,
  );
  // Mounts under /srv, the config read-only: `-v=${PWD}:/srv/`, `...:/srv/src/config/:ro`.
  assert.match(run, /\s-v=\$\{PWD\}:\/srv\/\s/);
  assert.match(
    run,
    /\$\{COREOS_ASSEMBLER_CONFIG_GIT:\+-v=\$COREOS_ASSEMBLER_CONFIG_GIT:\/srv\/src\/config\/:ro\}/,
  );
  const volumes = options.filter((_, i) => options[i - 1] === '-v');
  assert.is(volumes.length, 4);
  for (const v of volumes) assert.match(v, /^\/[^:]*:\/srv\/[a-z]+(:ro)?$/);
  assert.equal(
    volumes.filter((v) => v.endsWith(':ro')),
    [`${config}:/srv/config:ro`],
  );

  // Every option is one `podman run` declares (run.go defines the create flags, create.go).
  assert.match(
    await lines('containers/podman', PODMAN, 'cmd/podman/containers/run.go', 61),
    /common\.DefineCreateFlags\(cmd, &cliVals, entities\.CreateMode\)/,
  );
  const go = await file('containers/podman', PODMAN, 'cmd/podman/common/create.go');
  const declared = (name: string) =>
    new RegExp(`(\\w+FlagName := "${name}"|&cf\\.\\w+,\\s+"${name}", )`).test(go);
  const takesValue = new Set(['-v', '--workdir']);
  for (const [i, a] of options.entries()) {
    if (takesValue.has(options[i - 1]!)) continue;
    assert.ok(a.startsWith('-'), `${a}: not an option`);
    const name = a === '-v' ? 'volume' : a.slice(2).split('=')[0]!;
    assert.ok(declared(name), `podman run has no --${name}`);
  }
  assert.match(go, /volumeFlagName, "v", cf\.Volume,/);
  // The values: label=disable, missing, ro are ones podman documents.
  assert.match(await podmanDoc('security-opt', 17), /^- \*\*label=disable\*\*: Turn off label separation/);
  assert.ok(options.includes('--pull=missing'));
  assert.match(
    await podmanDoc('pull', 14),
    /^- \*\*missing\*\*: Pull the image only when the image is not in the local/,
  );
  assert.match(await podmanDoc('volume', 31), /^\* \*\*rw\*\*\|\*\*ro\*\*/);
  // What cosa passes and we do not need: devices, which a privileged container has anyway.
  assert.match(
    await podmanDoc('privileged', 11, 14),
    /A "privileged" container\nis given the same access to devices as the user launching the container/,
  );
});

/**
 * The names serde prints for `struct`'s fields, in declaration order: kebab-case or the `rename`,
 * `#[serde(flatten)]` fields expanded (`flat` gives their structs), `skip_serializing` ones left out.
 */
function serdeFields(source: string, struct: string, flat: Record<string, string>): string[] {
  const body = new RegExp(`pub\\(crate\\) struct ${struct} \\{\\n([\\s\\S]*?)\\n\\}`).exec(source)![1]!;
  const out: string[] = [];
  let attrs = '';
  for (const line of body.split('\n')) {
    const t = line.trim();
    if (t.startsWith('#[')) attrs += t;
    const f = /^pub\(crate\) (\w+): ([\w:]+)/.exec(t);
    if (!f) continue;
    const rename = /rename = "([^"]+)"/.exec(attrs)?.[1];
    if (attrs.includes('flatten')) {
      if (flat[f[2]!]) out.push(...serdeFields(source, flat[f[2]!]!, flat));
    } else if (!/skip_serializing[)\]]|skip_serializing,/.test(attrs))
      out.push(rename ?? f[1]!.replace(/_/g, '-'));
    attrs = '';
  }
  return out;
}

test('what rpm-ostree compose tree --print-only prints, as pipeline/plan/print-only-compare.ts cites it', async () => {
  const at = (path: string, from: number, to?: number) =>
    lines('coreos/rpm-ostree', RPMOSTREE, path, from, to);
  // Before --repo is looked at: parse, print, return (no repo, no fetch, no --unified-core).
  assert.match(
    await at('src/app/rpmostree-compose-builtin-tree.cxx', 1572, 1581),
    /if \(opt_print_only\)\n\s+\{\n\s+CXX_TRY_VAR \(treefile, rpmostreecxx::treefile_new \(treefile_path, basearch\), error\);\n\s+treefile->prettyprint_json_stdout \(\);\n\s+return TRUE;\n\s+\}\n\n\s+if \(!opt_repo\)/,
  );
  // compose tree is a local command that does not require root.
  assert.match(
    await at('src/app/rpmostree-builtin-compose.cxx', 32),
    /\{ "tree", RPM_OSTREE_BUILTIN_FLAG_LOCAL_CMD,$/,
  );
  assert.match(
    await at('rust/src/treefile.rs', 1541, 1545),
    /serde_json::to_writer_pretty\(out, &self\.parsed\)/,
  );
  assert.match(await at('rust/src/treefile.rs', 117), /\(None, Some\(arch\)\) => Some\(arch\.into\(\)\),/);
  assert.match(await at('rust/src/treefile.rs', 212), /treefile\.packages = Some\(pkgs\);/);
  assert.match(
    await at('rust/src/treefile.rs', 2701),
    /pub\(crate\) extra: HashMap<String, serde_json::Value>,/,
  );
  // serde_json without preserve_order (no indexmap): its Map is a BTreeMap, printed sorted.
  const lock = await at('Cargo.lock', 3123, 3131);
  assert.match(lock, /^name = "serde_json"/);
  assert.not.match(lock, /indexmap/);

  // Our printed key order is serde's field order, read from the structs.
  const rs = await file('coreos/rpm-ostree', RPMOSTREE, 'rust/src/treefile.rs');
  const order = serdeFields(rs, 'TreeComposeConfig', {
    DeriveConfigFields: 'DeriveConfigFields',
    BaseComposeConfigFields: 'BaseComposeConfigFields',
    LegacyTreeComposeConfigFields: 'LegacyTreeComposeConfigFields',
  });
  for (const k of ['packages', 'ref', 'basearch', 'rojig', 'repos', 'container-cmd'])
    assert.ok(order.includes(k), k);
  for (const k of ['variables', 'repovars', 'conditional-include', 'extra'])
    assert.not.ok(order.includes(k), k);
  for (const tree of ['test/fixtures/fcos-shaped/manifest.yaml', 'manifests/compose/manifest.yaml'])
    for (const basearch of ['x86_64', 'aarch64']) {
      const keys = Object.keys(
        flattenTreefile({
          file: `${repoRoot}/${tree}`,
          basearch,
          read,
          variables: { stream: 'stable', prod: true },
        }).treefile,
      );
      assert.equal(
        keys,
        order.filter((k) => keys.includes(k)),
        `${tree} ${basearch}`,
      );
    }
});

test.run();
