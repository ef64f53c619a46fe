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
