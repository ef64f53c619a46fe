// Reading an OCI archive (a tar of an OCI image layout) in place: its index.json and the few
// small blobs a caller names, found by walking the tar's headers and seeking past every other
// member's data. skopeo's `oci-archive:` transport first untars the whole archive into a
// temporary directory (containers/image oci/archive/oci_src.go:31, oci_transport.go:173-197
// @v5.23.0): for an FCOS-sized base, over a gigabyte written and removed to read a few KiB.
import { closeSync, openSync, readSync } from 'node:fs';
import { DataError, UsageError } from './errors.ts';
import { sha256Hex } from './files.ts';

const BLOCK = 512;

interface Member {
  offset: number;
  size: number;
}

/** A NUL-terminated field of a tar header. */
const field = (h: Buffer, start: number, len: number) => {
  const s = h.subarray(start, start + len);
  const end = s.indexOf(0);
  return s.subarray(0, end === -1 ? len : end).toString('utf8');
};

/** A numeric field: octal text, or base-256 when the first byte's high bit is set (GNU). */
function numeric(h: Buffer, start: number, len: number): number {
  if (h[start]! & 0x80) {
    let n = h[start]! & 0x7f;
    for (let i = start + 1; i < start + len; i++) n = n * 256 + h[i]!;
    return n;
  }
  const text = field(h, start, len).trim();
  return text ? Number.parseInt(text, 8) : 0;
}

/** `path=` of a PAX extended header's records (`<len> <key>=<value>\n`), if any. */
function paxPath(data: Buffer): string | undefined {
  let at = 0;
  let path: string | undefined;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    const len = Number(data.subarray(at, space).toString('ascii'));
    if (space === -1 || !Number.isInteger(len) || len <= 0) break;
    const record = data.subarray(space + 1, at + len - 1).toString('utf8');
    if (record.startsWith('path=')) path = record.slice('path='.length);
    at += len;
  }
  return path;
}

/** Member names without a leading `./` or `/`, as the layout's own paths. */
const normal = (name: string) => name.replace(/^(\.\/|\/)+/, '');

/**
 * The regular files of the tar `file` by name, with where their data starts: POSIX ustar names
 * (prefix + name), PAX `path` records and GNU long names ('L') are read; everything else skipped.
 */
function listMembers(fd: number, file: string): Map<string, Member> {
  const members = new Map<string, Member>();
  const header = Buffer.alloc(BLOCK);
  let offset = 0;
  let longName: string | undefined;
  for (;;) {
    if (readSync(fd, header, 0, BLOCK, offset) < BLOCK)
      throw new DataError(`${file}: the tar archive ends early`);
    if (header.every((b) => b === 0)) return members;
    const size = numeric(header, 124, 12);
    const type = String.fromCharCode(header[156]!);
    const data = offset + BLOCK;
    const read = () => {
      const b = Buffer.alloc(size);
      readSync(fd, b, 0, size, data);
      return b;
    };
    if (type === 'x') longName = paxPath(read()) ?? longName;
    else if (type === 'L') longName = field(read(), 0, size);
    else if (type !== 'g') {
      const prefix = field(header, 345, 155);
      const name = longName ?? (prefix ? `${prefix}/${field(header, 0, 100)}` : field(header, 0, 100));
      if (type === '0' || type === '\0') members.set(normal(name), { offset: data, size });
      longName = undefined;
    }
    offset = data + Math.ceil(size / BLOCK) * BLOCK;
  }
}

export interface Descriptor {
  mediaType?: string;
  digest: string;
  size?: number;
  annotations?: Record<string, string>;
}

const IMAGE_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const IMAGE_INDEX = 'application/vnd.oci.image.index.v1+json';
const REF_NAME = 'org.opencontainers.image.ref.name';

/** Runs `fn` with a reader of the archive's members by name (each read once, in place). */
function withArchive<T>(
  archive: string,
  fn: (member: (name: string) => Buffer, where: (name: string) => Member) => T,
): T {
  let fd: number;
  try {
    fd = openSync(archive, 'r');
  } catch (e) {
    throw new UsageError(`oci-archive ${archive}: ${(e as Error).message}`);
  }
  try {
    const members = listMembers(fd, archive);
    const where = (name: string) => {
      const m = members.get(name);
      if (!m) throw new DataError(`${archive}: no ${name} in the archive`);
      return m;
    };
    return fn((name) => {
      const m = where(name);
      const b = Buffer.alloc(m.size);
      readSync(fd, b, 0, m.size, m.offset);
      return b;
    }, where);
  } finally {
    closeSync(fd);
  }
}

/** The archive member that holds the blob `digest`. */
function blobName(archive: string, digest: string): string {
  const m = /^sha256:([0-9a-f]{64})$/.exec(digest);
  if (!m) throw new DataError(`${archive}: '${digest}' is not a sha256 digest`);
  return `blobs/sha256/${m[1]}`;
}

/** The blob `digest` names, checked against it. */
function blobOf(archive: string, member: (name: string) => Buffer, digest: string): Buffer {
  const raw = member(blobName(archive, digest));
  if (sha256Hex(raw) !== digest.slice(7))
    throw new DataError(`${archive}: blob ${digest} does not match its digest`);
  return raw;
}

/** The descriptor index.json gives for `image`, as containers/image chooses it (below). */
function descriptorOf(archive: string, member: (name: string) => Buffer, image: string): Descriptor {
  const index = JSON.parse(member('index.json').toString('utf8')) as { manifests?: Descriptor[] };
  const manifests = index.manifests ?? [];
  if (!image) {
    if (manifests.length !== 1)
      throw new UsageError(
        `${archive} holds ${manifests.length} images: name one (oci-archive:${archive}:<ref.name>)`,
      );
    return manifests[0]!;
  }
  const d = manifests.find(
    (m) =>
      (m.mediaType === IMAGE_MANIFEST || m.mediaType === IMAGE_INDEX) && m.annotations?.[REF_NAME] === image,
  );
  if (!d) throw new UsageError(`${archive}: no image named '${image}' (index.json ref.name annotations)`);
  return d;
}

/**
 * The manifest (or index) `oci-archive:<archive>[:<image>]` names, as `skopeo inspect --raw`
 * prints it, and its digest. The descriptor is chosen as containers/image chooses it
 * (oci/layout/oci_transport.go:176-211 @v5.23.0): without `image`, the index's only entry; with
 * it, the image manifest or index whose ref.name annotation is `image`. Blobs are checked
 * against their digest.
 */
export function archiveRawManifest(
  archive: string,
  image = '',
): { raw: string; digest: string; mediaType?: string } {
  return withArchive(archive, (member) => {
    const d = descriptorOf(archive, member, image);
    return {
      raw: blobOf(archive, member, d.digest).toString('utf8'),
      digest: d.digest,
      ...(d.mediaType && { mediaType: d.mediaType }),
    };
  });
}

/**
 * The labels of the image config of the archive's image manifest (`config.Labels`, what
 * `skopeo inspect` prints as Labels).
 */
export function archiveLabelsInPlace(archive: string, image = ''): Record<string, string> {
  return withArchive(archive, (member) => {
    const d = descriptorOf(archive, member, image);
    const manifest = JSON.parse(blobOf(archive, member, d.digest).toString('utf8')) as {
      config?: { digest?: string };
    };
    if (!manifest.config?.digest) throw new DataError(`${archive}: ${d.digest} is not an image manifest`);
    const config = JSON.parse(blobOf(archive, member, manifest.config.digest).toString('utf8')) as {
      config?: { Labels?: Record<string, string> | null };
    };
    return config.config?.Labels ?? {};
  });
}

/** What a caller reads of one archive, in place: its index.json entries and blobs by digest. */
export interface ArchiveReader {
  index(): Descriptor[];
  /** The blob `digest` names, checked against it. */
  blob(digest: string): Buffer;
  /**
   * Where the blob `digest` names lies in the archive file (its data's offset and size), for a
   * caller that streams it and checks the digest itself (a layer is too big to hold).
   */
  locate(digest: string): { offset: number; size: number };
}

/**
 * Runs `fn` with a reader of `archive`: its headers are walked once, then each member read in
 * place (publish's index staging, prune's carried layers).
 */
export function readArchive<T>(archive: string, fn: (r: ArchiveReader) => T): T {
  return withArchive(archive, (member, where) =>
    fn({
      index: () =>
        (JSON.parse(member('index.json').toString('utf8')) as { manifests?: Descriptor[] }).manifests ?? [],
      blob: (digest) => blobOf(archive, member, digest),
      locate: (digest) => ({ ...where(blobName(archive, digest)) }),
    }),
  );
}

/** `oci-archive:PATH[:IMAGE]` split as containers/image splits it (path, then the first ':'). */
export function parseArchiveRef(ref: string): { archive: string; image: string } {
  const rest = ref.slice('oci-archive:'.length);
  const colon = rest.indexOf(':');
  return colon === -1
    ? { archive: rest, image: '' }
    : { archive: rest.slice(0, colon), image: rest.slice(colon + 1) };
}
