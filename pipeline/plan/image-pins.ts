// Service and agent images pinned by digest. manifests/image-pins.json maps each tag reference the
// manifests name (image.yaml services/agents, stream overrides) to the digest `rock-image pin`
// resolved: of the multi-arch index when the tag names one, so one pin serves every arch. The
// quadlets in the image then say `Image=<repository>@sha256:...`, which the OS image's signature
// covers (podman checks the digest on pull), and bootc pulls them before the new deployment boots
// (logically bound images). Same format and parser as the builder lock (plan/image-lock.ts).
// Pure: values in, values out.
import type { Location } from '../errors.ts';
import type { ImageLock } from './image-lock.ts';
import { repositoryOf } from './trust.ts';

/** The repository of a reference: without `@digest` and without `:tag` (plan/trust.ts). */
export { repositoryOf };

/** Where the pins live, relative to the project root. */
export const IMAGE_PINS_FILE = 'manifests/image-pins.json';

/**
 * Where bootc looks for logically bound images: symlinks named `*.container` or `*.image` to quadlet
 * files, whose `[Container] Image=` it pulls on `bootc upgrade`/`switch` (bootc-dev/bootc
 * crates/lib/src/boundimage.rs:21 BOUND_IMAGE_DIR, :97-113 symlink and extension, :154-161 Image=,
 * @534c76ea474a356aa288f6767635e579ea2614d5).
 */
export const BOUND_IMAGES_DIR = '/usr/lib/bootc/bound-images.d';
/** Where the image's quadlets are (podman's system quadlet directory under /usr). */
export const QUADLET_DIR = '/usr/share/containers/systemd';

const DIGEST_SUFFIX = /@sha256:[0-9a-f]{64}$/;

/** One service or agent image as the image runs it. */
export interface ImagePin {
  /** The reference in the manifests (a tag, or already `@sha256:`). */
  ref: string;
  /** What the quadlet says: `<repository>@<digest>` when pinned, else `ref`. */
  image: string;
  /** The digest, when pinned. */
  digest?: string;
}

/**
 * `ref` as the quadlet names it. A pinned reference carries the digest alone: containers/image
 * refuses a docker reference with both a tag and a digest ("Docker references with both a tag
 * and digest are currently not supported", containers/image docker/docker_transport.go:105
 * @df7e80d2d19872b61f352a8a182ec934dc0c2346; podman alone strips the tag, containers/common
 * libimage/normalize.go:102-105 @f437c58aab67eec2b1c942f7ad4fec37a25a3766), and podman's quadlet
 * Image= is what `podman pull`
 * takes, `:tag` or a digest (containers/podman docs/source/markdown/podman-systemd.unit.5.md:710-718
 * @c6580b4a5219c9efb9ab79a540637d8a58b736f8).
 */
export function pinImage(ref: string, pins: ImageLock): ImagePin {
  const own = DIGEST_SUFFIX.exec(ref);
  if (own) return { ref, image: `${repositoryOf(ref)}${own[0]}`, digest: own[0].slice(1) };
  const entry = pins.images[ref];
  return entry
    ? { ref, image: `${repositoryOf(ref)}@${entry.digest}`, digest: entry.digest }
    : { ref, image: ref };
}

/** The comment above a quadlet's Image= line: what the digest stands for, or why there is none. */
export function imageNote(p: ImagePin): string {
  return p.digest
    ? `${p.ref}, pinned by digest (${IMAGE_PINS_FILE}); bound to the OS image (${BOUND_IMAGES_DIR})`
    : `${p.ref} by tag: not pinned in ${IMAGE_PINS_FILE}, not bound to the OS image`;
}

/** A quadlet's `Image=` in `section` (`Container`, or `Image` for .image files), the key bootc reads. */
export function quadletImage(text: string, section = 'Container'): string | undefined {
  let current = '';
  let image: string | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#') || line.startsWith(';')) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) current = s[1]!;
    else if (current === section) {
      const m = /^Image\s*=\s*(.*)$/.exec(line);
      if (m) image = m[1]!;
    }
  }
  return image;
}

export const isDigestRef = (image: string) => DIGEST_SUFFIX.test(image);

/** Every tag reference a project's images name, with each place that names it. */
export function tagRefs(uses: { ref: string; at: Location }[]): Map<string, Location[]> {
  const out = new Map<string, Location[]>();
  for (const u of uses) {
    if (DIGEST_SUFFIX.test(u.ref)) continue;
    out.set(u.ref, [...(out.get(u.ref) ?? []), u.at]);
  }
  return new Map([...out].sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** What changed between two pin files, one line per reference: `+` new, `-` gone, `~` moved. */
export function diffPins(before: ImageLock, after: ImageLock): string[] {
  const refs = [...new Set([...Object.keys(before.images), ...Object.keys(after.images)])].sort();
  const lines: string[] = [];
  for (const ref of refs) {
    const a = before.images[ref]?.digest;
    const b = after.images[ref]?.digest;
    if (a === b) continue;
    if (!a) lines.push(`+ ${ref} ${b}`);
    else if (!b) lines.push(`- ${ref} ${a}`);
    else lines.push(`~ ${ref} ${a} -> ${b}`);
  }
  return lines;
}
