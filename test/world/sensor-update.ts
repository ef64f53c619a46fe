// An OS update for a sensor of the test world: a build's image committed into an ostree archive
// repository, with the image's own ostree (the same shaping and commit as the native backend's
// deploy), which the running sensor pulls and stages. On Fedora CoreOS, bootc/rpm-ostree fetch
// the image from the registry and stage it the same way (ostree admin deploy --stage); neither
// exists for Debian, so `ostree pull` over HTTP stands in for the fetch.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ostreeShape } from '../../pipeline/artifacts/native.ts';
import { Ostree } from '../../pipeline/exec/ostree.ts';
import { createRunner } from '../../pipeline/exec/run.ts';
import { openToolRoot } from '../../pipeline/exec/toolroot.ts';
import { unpackArchive } from '../../pipeline/exec/umoci.ts';
import { createLogger } from '../../pipeline/log.ts';

/** Commits the image of `archive` on `ref` into the archive repository `repo` (created when new). */
export async function commitForUpdate(
  archive: string,
  repo: string,
  ref: string,
  meta: { version: string; timestamp: string; subject: string },
  work: string,
): Promise<string> {
  const run = createRunner(createLogger({ mode: 'plain', out: { write: () => true } }));
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const rootfs = join(work, 'rootfs');
  await unpackArchive(run, archive, join(work, 'oci'), rootfs);
  ostreeShape(rootfs);
  const root = await openToolRoot(run, rootfs, join(work, 'toolroot'));
  try {
    mkdirSync(repo, { recursive: true });
    await root.bind(repo, 'repo');
    await root.bind(rootfs, 'tree');
    const ostree = Ostree.image(root);
    await ostree.initRepo(repo);
    return await ostree.commit(repo, ref, rootfs, meta);
  } finally {
    await root.release();
    rmSync(work, { recursive: true, force: true });
  }
}
