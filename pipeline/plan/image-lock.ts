// Digest locks for the images the pipeline runs its tools in (the compose builder). A tag such as
// quay.io/fedora/fedora:41 moves with every Fedora update, so composes from the same inputs would
// differ and the input hash would not say so. The lock maps each tag to the manifest (list) digest
// `rock-image compose --lock-builder` resolved; the compose runs `<tag>@<digest>` and hashes it.
// Pure: text in, values and text out.

import { parseYaml } from '../config/yaml.ts';
import { ConfigError, type ConfigIssue } from '../errors.ts';

/** Where the lock lives, relative to the project root. */
export const IMAGE_LOCK_FILE = 'manifests/image-locks.json';

export interface ImageLock {
  /** tag reference -> its digest and the day it was resolved */
  images: Record<string, { digest: string; resolved: string }>;
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** A reference that already names its digest (`name@sha256:...`, with or without a tag). */
export const isPinned = (ref: string) => /@sha256:[0-9a-f]{64}$/.test(ref);

/** Parses the lock; every issue names the file, line and rule. */
export function parseImageLock(text: string, file: string): ImageLock {
  const { source, issues } = parseYaml(text, file);
  if (!source) throw new ConfigError(issues);
  const fail = (path: string[], rule: string, message: string, key = false) =>
    issues.push({ file, ...source.locate(path, key), path: `/${path.join('/')}`, rule, message });
  const d = source.data as { images?: unknown } | null;
  const out: ImageLock = { images: {} };
  if (!d || typeof d !== 'object' || Array.isArray(d) || !d.images || typeof d.images !== 'object') {
    fail([], 'type', 'an image lock is {"images": {"<tag reference>": {"digest", "resolved"}}}');
    throw new ConfigError(issues);
  }
  for (const k of Object.keys(d)) if (k !== 'images') fail([k], 'unknown-key', `unknown key '${k}'`, true);
  for (const [ref, e] of Object.entries(d.images as Record<string, unknown>)) {
    const entry = e as { digest?: unknown; resolved?: unknown } | null;
    if (isPinned(ref)) fail(['images', ref], 'image-lock-ref', 'lock a tag, not a digest reference', true);
    else if (!entry || typeof entry.digest !== 'string' || !DIGEST.test(entry.digest))
      fail(['images', ref], 'image-lock-digest', 'needs "digest": "sha256:<64 hex>"');
    else out.images[ref] = { digest: entry.digest, resolved: String(entry.resolved ?? '') };
  }
  if (issues.length) throw new ConfigError(issues as ConfigIssue[]);
  return out;
}

/** Two-space JSON, images sorted by reference, trailing newline (stable diffs in review). */
export function serializeImageLock(lock: ImageLock): string {
  const images = Object.fromEntries(Object.entries(lock.images).sort(([a], [b]) => (a < b ? -1 : 1)));
  return `${JSON.stringify({ images }, null, 2)}\n`;
}

/** `ref` pinned by the lock (`tag@digest`), `ref` itself when it names a digest, else undefined. */
export function pinnedRef(lock: ImageLock, ref: string): string | undefined {
  if (isPinned(ref)) return ref;
  const e = lock.images[ref];
  return e ? `${ref}@${e.digest}` : undefined;
}
