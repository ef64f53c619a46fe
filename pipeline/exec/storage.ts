// Container storage location shared by buildah and skopeo. Default: the tools' own (system)
// storage; `--storage DIR` gives a private one (tests, parallel CI jobs).

export interface Storage {
  root?: string;
  runroot?: string;
  driver?: string;
}

export function storageFromDir(dir: string | undefined): Storage {
  return dir ? { root: `${dir}/storage`, runroot: `${dir}/run`, driver: 'overlay' } : {};
}

/** Global flags for buildah/podman. */
export function storageArgs(s: Storage): string[] {
  return [
    ...(s.root ? ['--root', s.root] : []),
    ...(s.runroot ? ['--runroot', s.runroot] : []),
    ...(s.driver ? ['--storage-driver', s.driver] : []),
  ];
}

/** A containers-storage: reference that names this storage explicitly (for skopeo). */
export function storageRef(s: Storage, name: string): string {
  return s.root
    ? `containers-storage:[${s.driver ?? 'overlay'}@${s.root}+${s.runroot ?? `${s.root}/../run`}]${name}`
    : `containers-storage:${name}`;
}
