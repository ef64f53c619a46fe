// Child process for the kill tests of images.test.ts: runs pushImages + signAndTag like the
// publish command does, and SIGKILLs itself at the point named by KILL_AT:
//   after-push  - the images and index are pushed, nothing signed or tagged
//   mid-sign    - after the first signature was written, before any tag
//   mid-tag     - while the first tag is being written (before skopeo starts)
import { createRunner, type Runner } from '../../pipeline/exec/run.ts';
import { createLogger } from '../../pipeline/log.ts';
import { signAndTag } from '../../pipeline/publish/image-tags.ts';
import {
  type ArchImage,
  type ImageTarget,
  pushImages,
  type SignOptions,
} from '../../pipeline/publish/images.ts';

const input = JSON.parse(process.argv[2]!) as {
  target: ImageTarget;
  images: ArchImage[];
  tags: string[];
  sign: SignOptions;
};
const killAt = process.env.KILL_AT;
const base = createRunner(createLogger({ mode: 'plain', out: { write: () => true } }));
let signed = 0;
const run: Runner = async (cmd, args, opts) => {
  // A tag write is the only copy whose destination names no digest.
  const dest = args.at(-1) ?? '';
  if (killAt === 'mid-tag' && args[0] === 'copy' && dest.startsWith('docker://') && !dest.includes('@'))
    process.kill(process.pid, 'SIGKILL');
  const r = await base(cmd, args, opts);
  if (cmd === 'skopeo' && args[0] === 'standalone-sign' && ++signed === 1 && killAt === 'mid-sign')
    process.kill(process.pid, 'SIGKILL');
  return r;
};
const target = { ...input.target, run };
const pushed = await pushImages(target, input.images, { retries: 0 });
if (killAt === 'after-push') process.kill(process.pid, 'SIGKILL');
await signAndTag(target, pushed, input.tags, input.sign, { retries: 0 });
process.stdout.write(JSON.stringify(pushed));
