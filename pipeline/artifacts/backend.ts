// What every artifact backend gets and gives back. A backend turns one arch's OCI archive into
// uncompressed artifact files in its work directory; makeArtifacts (index.ts) moves them into
// the build, compresses them and records them in meta.json.
import type { Runner } from '../exec/run.ts';
import type { Logger } from '../log.ts';
import type { Arch, ArtifactKind, Platform } from './layout.ts';
import type { NativePlan } from './native-plan.ts';

export interface ArchJob {
  arch: Arch;
  /** Image name (meta.json `name`), e.g. rocknsm-coreos. */
  name: string;
  version: string;
  /** ostree stateroot (`--os`), e.g. rocknsm. */
  osname: string;
  /** The build's OCI archive for this arch. */
  archive: string;
  /** Scratch space for this arch; the backend may use it freely. */
  work: string;
  platforms: Platform[];
  /** Image creation time (RFC 3339), used as the ostree commit timestamp. */
  created: string;
  /** Where PXE clients fetch the files from, and the Ignition config they apply. */
  pxe: { baseUrl: string; ignitionUrl: string };
  /** Registry reference a bootc-installed system follows for updates (bootc backend). */
  targetImgref?: string;
  /**
   * The image carries our containers policy (stream publish.trust: default reject, plan/trust.ts),
   * so a bootc install may enforce signatures on its updates. Default false.
   */
  signed?: boolean;
  /**
   * Kernel arguments of the image's /usr/lib/bootc/kargs.d for this arch, for backends whose
   * deploy does not read kargs.d (coreos). Default: none.
   */
  imageKargs?: string[];
  /** Root partition size; default: from the image's size (native) or the backend's default. */
  rootSizeMiB?: number;
}

export interface Produced {
  kind: ArtifactKind;
  /** Uncompressed file in the job's work directory. */
  path: string;
}

export interface BackendContext {
  run: Runner;
  log: Logger;
}

export interface ArtifactBackend {
  name: string;
  /** Platforms this backend can make, and why not the others. */
  supports(platform: Platform): true | string;
  /** The exact command lines the backend would run (for `rock-image plan --artifacts`). */
  commands(job: ArchJob): string[][];
  /**
   * The whole step list `make` runs, with its run-time inputs, for a backend that has more than
   * command lines to show (native: native-plan.ts); `plan --artifacts` prints it instead.
   */
  plan?(job: ArchJob): NativePlan;
  make(ctx: BackendContext, job: ArchJob): Promise<Produced[]>;
}
