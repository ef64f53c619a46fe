// Why the build's archive goes through buildah's blob cache (pipeline/exec/buildah.ts BlobCache)
// and not through an OCI layout that already holds the base's blobs: the upstream lines those
// facts rest on, read at the commits of Debian 12's buildah 1.28.2 and the containers/image it
// vendors (v5.23.0). Mirrors: ROCK_UPSTREAM_GIT (see test/world/upstream.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { lines } from '../world/upstream.ts';

const IMAGE = 'containers/image';
/** v5.23.0, vendored by buildah 1.28.2 (its go.mod). */
const IMAGE_AT = '34438211d93a79f096d447cb6987b402baf2adc1';
const BUILDAH = 'containers/buildah';
/** v1.28.2 */
const BUILDAH_AT = '6a35b0ab235df00088b76807d6f8e8c20c1a32e0';

test('buildah pull and push take --blob-cache (hidden); push through it asks for gzip', async () => {
  assert.match(await lines(BUILDAH, BUILDAH_AT, 'go.mod', 1, 200), /containers\/image\/v5 v5\.23\.0\n/);
  assert.match(await lines(BUILDAH, BUILDAH_AT, 'cmd/buildah/pull.go', 62), /"blob-cache"/);
  assert.match(await lines(BUILDAH, BUILDAH_AT, 'cmd/buildah/push.go', 85), /"blob-cache"/);
  assert.match(await lines(BUILDAH, BUILDAH_AT, 'cmd/buildah/push.go', 141), /compress := define\.Gzip/);
  assert.match(
    await lines(BUILDAH, BUILDAH_AT, 'pull.go', 65),
    /DestinationLookupReferenceFunc = cacheLookupReferenceFunc\(options\.BlobDirectory, types\.PreserveOriginal\)/,
  );
  const push = await lines(BUILDAH, BUILDAH_AT, 'push.go', 119, 123);
  assert.match(push, /if options\.Compression == archive\.Gzip \{\n\s+compress = types\.Compress/);
  assert.match(
    push,
    /SourceLookupReferenceFunc = cacheLookupReferenceFunc\(options\.BlobDirectory, compress\)/,
  );
});

test('the pull notes each gzip layer: <uncompressed>.compressed holds the compressed digest', async () => {
  assert.match(
    await lines(IMAGE, IMAGE_AT, 'pkg/blobcache/dest.go', 180),
    /if compression == archive\.Gzip \{/,
  );
  assert.match(
    await lines(IMAGE, IMAGE_AT, 'pkg/blobcache/dest.go', 112),
    /AtomicWriteFile\(decompressedFilename\+compressedNote, \[\]byte\(compressedDigest\.String\(\)\)/,
  );
});

test('the push offers the noted compressed blob, needing only the note and that blob', async () => {
  const src = await lines(IMAGE, IMAGE_AT, 'pkg/blobcache/src.go', 135, 176);
  assert.match(src, /^\tif canReplaceBlobs && s\.reference\.compress != types\.PreserveOriginal \{/);
  assert.match(
    src,
    /alternate = blobFile \+ compressedNote\n\s+replaceDigest, err = os\.ReadFile\(alternate\)/,
  );
  assert.match(
    src,
    /alternate = s\.reference\.blobPath\(digest\.Digest\(replaceDigest\), false\)\n\s+fileInfo, err := os\.Stat\(alternate\)/,
  );
  assert.match(src, /info\.CompressionOperation = s\.reference\.compress/);
  // and the copy compresses only what is not compressed, recompressing only to another format.
  assert.match(
    await lines(IMAGE, IMAGE_AT, 'copy/compression.go', 109),
    /DesiredLayerCompression\(\) == types\.Compress && !detected\.isCompressed/,
  );
  assert.match(
    await lines(IMAGE, IMAGE_AT, 'copy/compression.go', 139, 140),
    /detected\.isCompressed &&\n\s+ic\.c\.compressionFormat != nil && ic\.c\.compressionFormat\.Name\(\) != detected\.format\.Name\(\)/,
  );
});

test('an OCI layout holding the base blobs is no help: storage offers uncompressed digests, the layout looks up only those', async () => {
  assert.match(
    await lines(IMAGE, IMAGE_AT, 'storage/storage_src.go', 254),
    /Digest:\s+layer\.UncompressedDigest,/,
  );
  const oci = await lines(IMAGE, IMAGE_AT, 'oci/layout/oci_dest.go', 176, 195);
  assert.match(oci, /^func \(d \*ociImageDestination\) TryReusingBlobWithOptions/);
  assert.match(oci, /blobPath, err := d\.ref\.blobPath\(info\.Digest, d\.sharedBlobDir\)/);
  assert.not.match(oci, /options\.Cache/);
  // A registry destination does ask the blob info cache for other locations.
  assert.match(
    await lines(IMAGE, IMAGE_AT, 'docker/docker_image_dest.go', 333),
    /options\.Cache\.CandidateLocations2\(/,
  );
});

test.run();
