// podman, the one driver for containers the pipeline runs: the container-mode compose (its
// builder image), custom-coreos-disk-images (coreos backend) and bootc install (bootc backend).
// Each caller builds its own `podman run` arguments next to the upstream facts they come from;
// the runner is always the caller's, so every command reaches the JSON log.
import { ToolMissingError } from '../errors.ts';
import type { Runner, RunOptions, RunResult } from './run.ts';
import { requireTool } from './tools.ts';

/** Runs `podman ARGS` with the caller's runner; exit 69 when podman is not installed. */
export function podman(run: Runner, args: readonly string[], opts?: RunOptions): Promise<RunResult> {
  requireTool('podman');
  return run('podman', args, opts);
}

/**
 * Makes sure local storage holds `image` (`podman image exists`, else `podman pull`); exit 69,
 * naming podman's last words, when it is absent and cannot be pulled (no registry access).
 */
export async function ensureImage(run: Runner, image: string, tag?: string): Promise<void> {
  const exists = await run('podman', ['image', 'exists', image], { allowFailure: true, tag });
  if (exists.exitCode === 0) return;
  const pulled = await run('podman', ['pull', image], { allowFailure: true, tag });
  if (pulled.exitCode !== 0) {
    const why = (pulled.stderr || pulled.stdout).trim().split('\n').slice(-2).join(' ');
    throw new ToolMissingError(
      `builder image ${image}`,
      `not present locally and 'podman pull' failed (no network or registry access?): ${why}`,
    );
  }
}
