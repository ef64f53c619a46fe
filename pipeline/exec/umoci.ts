// Unpacks an OCI archive into a plain root filesystem: skopeo copies it to an OCI layout under
// a known tag (archives need not carry one), umoci applies the layers (whiteouts included).
import type { Runner } from './run.ts';
import { archiveCopyArgs } from './skopeo.ts';
import { requireTool } from './tools.ts';

export async function unpackArchive(
  run: Runner,
  archive: string,
  work: string,
  rootfs: string,
  tag?: string,
) {
  requireTool('skopeo');
  requireTool('umoci');
  await run('skopeo', archiveCopyArgs(archive, `oci:${work}:rock`), { tag });
  await run('umoci', ['raw', 'unpack', '--image', `${work}:rock`, rootfs], { tag });
}
