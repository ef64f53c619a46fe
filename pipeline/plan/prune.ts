// Which builds a build directory keeps: the newest N (builds.json order), plus any the caller
// pins (e.g. the version a stream currently points at). Pure: the command applies the result.
export interface PrunePlan {
  keep: string[];
  remove: string[];
}

export function planPrune(builds: { id: string }[], keepNewest: number, pinned: string[] = []): PrunePlan {
  if (!Number.isInteger(keepNewest) || keepNewest < 1)
    throw new RangeError(`keep must be a whole number of builds, at least 1 (got ${keepNewest})`);
  const keep: string[] = [];
  const remove: string[] = [];
  builds.forEach((b, i) => {
    (i < keepNewest || pinned.includes(b.id) ? keep : remove).push(b.id);
  });
  return { keep, remove };
}

/** A file of a blob cache directory (buildah's --blob-cache), and a note's content. */
export interface CacheFile {
  name: string;
  /** For a `.compressed` note: the compressed digest it names. */
  note?: string;
}

/**
 * The blob-cache files no kept build needs: the compressed layer blobs that none of the kept
 * builds' archives carries (an older base's), each with its notes. containers/image
 * pkg/blobcache names a blob by its digest (blobcache.go:78-90), notes a pulled layer as
 * `<uncompressed>.compressed` holding the compressed digest and `<compressed>.decompressed`
 * (dest.go:129-135 @df7e80d2); a push reads only the notes and the compressed blobs. Configs and
 * manifests (small) are left alone.
 */
export function staleCacheFiles(files: CacheFile[], carried: ReadonlySet<string>): string[] {
  const blob = /^sha256:[0-9a-f]{64}$/;
  return files
    .filter((f) => {
      if (blob.test(f.name)) return !carried.has(f.name);
      if (f.name.endsWith('.decompressed')) return !carried.has(f.name.slice(0, -'.decompressed'.length));
      if (f.name.endsWith('.compressed')) return f.note !== undefined && !carried.has(f.note);
      return false;
    })
    .map((f) => f.name)
    .sort();
}
