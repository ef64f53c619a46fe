// Test projects made from this repository: what a site that publishes elsewhere changes.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Points the profiles of the project in `dir` that follow one of `streams` at `repo` (host/path),
 * keeping the stream: a stream's policy trusts only its publish.registry, so its profiles must
 * follow that repository (the follows-trusted rule).
 */
export function followRegistry(dir: string, repo: string, streams: string[]): void {
  const profiles = join(dir, 'manifests/profiles');
  for (const f of readdirSync(profiles).filter((x) => x.endsWith('.yaml'))) {
    const file = join(profiles, f);
    writeFileSync(
      file,
      readFileSync(file, 'utf8').replace(/^follows: .*:([^:\n]+)$/m, (line, stream: string) =>
        streams.includes(stream) ? `follows: ${repo}:${stream}` : line,
      ),
    );
  }
}
