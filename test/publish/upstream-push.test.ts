// Why publish pushes each arch straight from its .ociarchive and the index alone
// (pipeline/publish/images.ts openPush, image-tags.ts tag): the upstream lines those facts rest on, read at
// skopeo v1.9.3 (Debian 12's) and the containers/image v5.22.1 it vendors. Mirrors:
// ROCK_UPSTREAM_GIT (see test/world/upstream.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { lines } from '../world/upstream.ts';

const SKOPEO = 'containers/skopeo';
/** v1.9.3 */
const AT = '89966c513c89061d288690da671643d50968ca3f';
const IMAGE = 'vendor/github.com/containers/image/v5';

test('skopeo v1.9.3 vendors containers/image v5.22.1', async () => {
  assert.match(await lines(SKOPEO, AT, 'go.mod', 1, 200), /containers\/image\/v5 v5\.22\.1\n/);
});

test('oci-archive: untars the whole archive into a temp dir under /var/tmp, then reads that layout', async () => {
  assert.match(
    await lines(SKOPEO, AT, `${IMAGE}/oci/archive/oci_src.go`, 31),
    /tempDirRef, err := createUntarTempDir\(sys, ref\)/,
  );
  const untar = await lines(SKOPEO, AT, `${IMAGE}/oci/archive/oci_transport.go`, 173, 192);
  assert.match(untar, /^func createUntarTempDir/);
  assert.match(untar, /archive\.NewDefaultArchiver\(\)\.Untar\(arch, dst,/);
  assert.match(
    await lines(SKOPEO, AT, `${IMAGE}/internal/tmpdir/tmpdir.go`, 18),
    /builtinUnixTempDirForBigFiles = "\/var\/tmp"/,
  );
});

test('with no image name, the layout names its one manifest; the path ends at the first colon', async () => {
  const pick = await lines(SKOPEO, AT, `${IMAGE}/oci/layout/oci_transport.go`, 183, 186);
  assert.match(
    pick,
    /if ref\.image == "" \{\n.*\n\s+if len\(index\.Manifests\) == 1 \{\n\s+d = &index\.Manifests\[0\]/,
  );
  assert.match(
    await lines(SKOPEO, AT, `${IMAGE}/oci/internal/oci_util.go`, 60, 62),
    /sep := strings\.SplitN\(reference, ":", 2\)\n\s+path := sep\[0\]/,
  );
});

test('a digested destination refuses a source manifest of another digest (image and index)', async () => {
  const one = await lines(SKOPEO, AT, `${IMAGE}/copy/copy.go`, 618, 631);
  assert.match(one, /if digested, ok := named\.\(reference\.Digested\); ok \{/);
  assert.match(one, /manifest\.MatchesDigest\(src\.ManifestBlob, digested\.Digest\(\)\)/);
  const list = await lines(SKOPEO, AT, `${IMAGE}/copy/copy.go`, 416, 426);
  assert.match(list, /manifest\.MatchesDigest\(manifestList, digested\.Digest\(\)\)/);
  assert.match(list, /would not match destination reference/);
});

test('--preserve-digests: no manifest change, so no blob is recompressed', async () => {
  assert.match(
    await lines(SKOPEO, AT, `${IMAGE}/copy/copy.go`, 663, 665),
    /if options\.PreserveDigests \{\n\s+cannotModifyManifestReason = "Instructed to preserve digests"/,
  );
  assert.match(
    await lines(SKOPEO, AT, `${IMAGE}/copy/blob.go`, 67, 69),
    /canModifyBlob := !isConfig && ic\.cannotModifyManifestReason == ""\n[\s\S]*blobPipelineCompressionStep\(&stream, canModifyBlob,/,
  );
  assert.match(
    await lines(SKOPEO, AT, `${IMAGE}/copy/compression.go`, 73),
    /if canModifyBlob && layerCompressionChangeSupported \{/,
  );
});

test('a layer the registry repository holds is not read from the source', async () => {
  const copy = await lines(SKOPEO, AT, `${IMAGE}/copy/copy.go`, 1150, 1175);
  assert.match(copy, /canAvoidProcessingCompleteLayer := !diffIDIsNeeded && !encryptingOrDecrypting/);
  assert.match(copy, /reused, blobInfo, err := ic\.c\.dest\.TryReusingBlobWithOptions\(/);
  assert.match(copy, /Skipping blob %s \(already present\)/);
  assert.match(
    await lines(SKOPEO, AT, `${IMAGE}/docker/docker_image_dest.go`, 323, 330),
    /First, check whether the blob happens to already exist at the destination\.\n\s+haveBlob, reusedInfo, err := d\.tryReusingExactBlob\(/,
  );
});

test('--multi-arch index-only: every instance skipped, the index written as it is (the index push and each tag)', async () => {
  assert.match(
    await lines(SKOPEO, AT, 'cmd/skopeo/copy.go', 108, 109),
    /case "index-only":\n\s+return copy\.CopySpecificImages, nil/,
  );
  // No instances given: each one is skipped, its descriptor kept from the list itself.
  const loop = await lines(SKOPEO, AT, `${IMAGE}/copy/copy.go`, 472, 488);
  assert.match(loop, /if options\.ImageListSelection == CopySpecificImages \{\n\s+skip := true/);
  assert.match(loop, /update, err := updatedList\.Instance\(instanceDigest\)[\s\S]*continue/);
  // Unchanged, the original bytes are written: the digest stays.
  assert.match(
    await lines(SKOPEO, AT, `${IMAGE}/copy/copy.go`, 546, 552),
    /attemptedManifestList = manifestList\n[\s\S]*err = c\.dest\.PutManifest\(ctx, attemptedManifestList, nil\)/,
  );
});

test.run();
