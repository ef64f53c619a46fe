// Where composed bases live, shared by `compose` (writes them) and `build` (reads them).
import { join } from 'node:path';

/** Default output of `rock-image compose --stream S`: <project>/build/compose/<S>. */
export function composeOutputDir(root: string, stream: string): string {
  return join(root, 'build', 'compose', stream);
}
