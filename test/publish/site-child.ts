// Child process for the kill test: publishes a build directory into a site (artifacts, GitHub
// draft, metadata, GitHub publish) with its JSON log in a file the parent watches.
// argv: buildRoot version siteDir baseUrl logFile githubUrl gpgHome keyFpr
import { createGitHub } from '../../pipeline/exec/github.ts';
import { createLogger } from '../../pipeline/log.ts';
import { applyPlan } from '../../pipeline/publish/apply.ts';
import { readBuilds, readExisting } from '../../pipeline/publish/read.ts';
import { buildDir, planSite } from '../../pipeline/publish/site.ts';

const [buildRoot, version, site, base, logFile, ghUrl, gpgHome, fpr] = process.argv.slice(2) as string[];
const log = createLogger({ mode: 'plain', out: { write: () => true } });
log.attachFile(logFile!);
const builds = readBuilds(buildRoot!, version!);
const dests = builds.flatMap((b) =>
  Object.values(b.meta.images).map((i) => `${buildDir('stable', version!)}/${b.arch}/${i.path}`),
);
const plan = planSite({
  stream: 'stable',
  version: version!,
  requireArches: ['x86_64', 'aarch64'],
  builds,
  baseUrl: base!,
  imageRepo: 'ghcr.io/rocknsm/rocknsm-coreos',
  existing: await readExisting(site!, 'stable', dests),
  now: Date.UTC(2026, 10, 22, 12),
  // The fake builds are the native backend's (site.test.ts fakeBuild); a test stream allows them.
  nativeDisks: { allowed: true, at: { file: 'manifests/streams/stable.yaml', line: 1, col: 1 } },
  signed: true,
});
await applyPlan({
  plan,
  siteDir: site!,
  signBy: fpr,
  gpgHome,
  github: {
    gh: createGitHub({
      token: 'ghp_testtoken_0123456789',
      repo: 'rocknsm/rocknsm-coreos',
      baseUrl: ghUrl,
      retryBaseMs: 10,
      writeIntervalMs: 0,
    }),
    spec: { tag: `v${version}`, name: version!, body: '' },
  },
  log,
});
