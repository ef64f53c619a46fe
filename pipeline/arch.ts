// The architectures we build, in the one order every list of them follows (publish, bundle,
// stream metadata), and their OCI names (image-spec config.go: amd64, arm64).

export type Arch = 'x86_64' | 'aarch64';

/** Every arch, in canonical order. */
export const ARCHES: readonly Arch[] = ['x86_64', 'aarch64'];

export const isArch = (s: string): s is Arch => (ARCHES as readonly string[]).includes(s);

/** The OCI platform architecture of each arch. */
export const ociArch: Record<Arch, string> = { x86_64: 'amd64', aarch64: 'arm64' };
