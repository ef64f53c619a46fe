// biome-ignore-all lint/suspicious/noTemplateCurlyInString: base_url templates are literal ${...}
// The Zincati test client (test/world/zincati.ts) against what Zincati's source says: the request
// URL and header, reading the response and its errors, and the choice of the next release.
// Citations are `coreos/zincati <path>:<line> @be76c4aa` unless another repository is named.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  type Booted,
  bootedDeployment,
  CincinnatiError,
  checkForUpdate,
  fetchGraph,
  type Graph,
  type GraphNode,
  graphUrl,
  localDeployments,
  nextUpdate,
  parseGraph,
  parseReference,
  referenceWhole,
  type ZincatiIdentity,
} from '../world/zincati.ts';

const UUID = 'e0f3745b108f471cbd4883c6fbed8cdd'; // Identity::mock_default, src/identity/mod.rs:166
const SHA = '8b79877efa7ac06becd8637d95f8ca83aa385f89f383288bf3c2c31ca53216c7';
const DIGEST = 'sha256:ca99893c80a7b84dd84d4143bd27538207c2f38ab6647a58d9c8caa251f9a087';
const id = (booted: Booted = { version: '43.20251024.3.0', checksum: SHA }): ZincatiIdentity => ({
  basearch: 'x86_64',
  stream: 'stable',
  platform: 'metal',
  nodeUuid: UUID,
  booted,
});
// The query for id(): names and order of src/identity/mod.rs:135-149; group `default` (:16).
const Q = `basearch=x86_64&os_version=43.20251024.3.0&group=default&node_uuid=${UUID}&platform=metal&stream=stable&os_checksum=${SHA}`;

function throws(fn: () => unknown, kind: string, message: string) {
  try {
    fn();
  } catch (err) {
    assert.instance(err, CincinnatiError);
    assert.is((err as CincinnatiError).kind, kind);
    assert.is((err as Error).message, message);
    return;
  }
  assert.unreachable(`no ${kind}`);
}

// --- the request -----------------------------------------------------------------------------------

test('URL: v1/graph URL-joined onto base_url (src/cincinnati/client.rs:21,145)', () => {
  // FCOS's own base_url has no path (dist/config.d/50-fedora-coreos-cincinnati.toml:3).
  assert.is(
    graphUrl('https://updates.coreos.fedoraproject.org', id()),
    `https://updates.coreos.fedoraproject.org/v1/graph?${Q}`,
  );
  // Without a trailing slash the last segment goes (servo/rust-url url/src/lib.rs:432-436 @v2.5.8).
  assert.is(graphUrl('http://u.example/rock/stable', id()), `http://u.example/rock/v1/graph?${Q}`);
  assert.is(graphUrl('http://u.example/rock/stable/', id()), `http://u.example/rock/stable/v1/graph?${Q}`);
  // The base's query and fragment do not survive the join.
  assert.is(graphUrl('http://u.example/rock/?a=1#f', id()), `http://u.example/rock/v1/graph?${Q}`);
  // So no base_url reaches a file like the site's v1/graph/<stream>/<arch>.json: the path always ends in /v1/graph.
  assert.is(
    graphUrl('http://u.example/v1/graph/${stream}/${basearch}.json', id()),
    `http://u.example/v1/graph/stable/v1/graph?${Q}`,
  );
});

test('URL: ${basearch} ${group} ${platform} ${stream} substituted, nothing else (src/identity/mod.rs:121-130, src/cincinnati/mod.rs:119-125)', () => {
  const grouped = { ...id(), group: 'infra.01' };
  assert.is(
    graphUrl('https://u.example/${stream}/${basearch}/${group}/${platform}/', grouped),
    `https://u.example/stable/x86_64/infra.01/metal/v1/graph?${Q.replace('group=default', 'group=infra.01')}`,
  );
  // Other variables stay; the URL parser then escapes the braces.
  assert.is(
    graphUrl('https://u.example/${node_uuid}/${stream}/', id()),
    `https://u.example/$%7Bnode_uuid%7D/stable/v1/graph?${Q}`,
  );
  // Not a template when the first `}` comes before the first `${` (coreos/envsubst-rs src/lib.rs:64-75 @v0.2.1).
  assert.is(
    graphUrl('https://u.example/}/${stream}/', id()),
    `https://u.example/%7D/$%7Bstream%7D/v1/graph?${Q}`,
  );
  // A value with `$`, `{` or `}` is refused (envsubst src/lib.rs:95-105 @v0.2.1); so is an empty base_url
  // (src/cincinnati/mod.rs:114-115) and a group off ^[a-zA-Z0-9.-]+$ (src/identity/mod.rs:179).
  assert.throws(
    () => graphUrl('https://u.example/${stream}/', { ...id(), stream: 'a{b' }),
    /envsubst error: variable value 'a\{b' contains forbidden character '\{'/,
  );
  assert.throws(() => graphUrl('', id()), /empty Cincinnati base URL/);
  assert.throws(() => graphUrl('https://u.example/', { ...id(), group: 'intránët' }), /invalid group label/);
  // An unparsable base fails each check as client_failed_build (src/cincinnati/client.rs:215-216).
  throws(
    () => graphUrl('not a url', id()),
    'client_failed_build',
    "client-side error: failed to parse 'not a url'",
  );
});

test('URL: rollout_wariness only when set, as {:.06} (src/identity/mod.rs:150-152)', () => {
  const base = 'https://u.example/';
  assert.is(
    graphUrl(base, id(), { rolloutWariness: 0.5 }),
    `https://u.example/v1/graph?${Q}&rollout_wariness=0.500000`,
  );
  const w = (x: number) =>
    new URL(graphUrl(base, id(), { rolloutWariness: x })).searchParams.get('rollout_wariness');
  // Rust rounds a tie to even (1/128 = 0.0078125), JS's toFixed up; rustc 1.95 prints these.
  assert.equal([0, 1, 1 / 128, 3 / 128, 0.1, -0].map(w), [
    '0.000000',
    '1.000000',
    '0.007812',
    '0.023438',
    '0.100000',
    '-0.000000',
  ]);
  // Out of 0..1 Zincati does not start (src/identity/mod.rs:71-72).
  assert.throws(
    () => graphUrl(base, id(), { rolloutWariness: 1.5 }),
    /unexpected overlarge rollout wariness: 1.5/,
  );
  assert.throws(
    () => graphUrl(base, id(), { rolloutWariness: -0.1 }),
    /unexpected negative rollout wariness/,
  );
});

test('URL: a container-booted host sends its pullspec, tag dropped, as os_checksum, and oci=true (src/identity/mod.rs:145-148)', () => {
  // rpm-ostree status as in Zincati's tests/fixtures/rpm-ostree-status.json:17-29; the pullspec
  // Zincati's own test expects (src/rpm_ostree/cli_status.rs:406-409).
  const status = {
    deployments: [
      {
        booted: true,
        'container-image-reference': 'ostree-image-signed:docker://quay.io/fedora/fedora-coreos:stable',
        'container-image-reference-digest': DIGEST,
        checksum: '36ff46d732a070a1bf10f7157f764e316f99a836dcdbf56702798e5042411fe9',
        version: '43.20251024.3.0',
      },
    ],
  };
  const qs = (b: Booted) => graphUrl('https://u.example/', id(b)).split('&os_checksum=')[1];
  assert.is(
    qs(bootedDeployment(status)),
    `quay.io%2Ffedora%2Ffedora-coreos%40sha256%3A${DIGEST.slice(7)}&oci=true`,
  );
  // Our sensors' origin (a registry with a port) and a Docker Hub short name, normalised
  // (youki-dev/oci-spec-rs src/distribution/reference.rs:304-331 @v0.7.1).
  const origin = (ref: string) =>
    bootedDeployment({ deployments: [{ ...status.deployments[0]!, 'container-image-reference': ref }] });
  assert.is(
    qs(origin('ostree-unverified-registry:127.0.0.1:5000/rocknsm/sensor:stable')),
    `127.0.0.1%3A5000%2Frocknsm%2Fsensor%40sha256%3A${DIGEST.slice(7)}&oci=true`,
  );
  assert.is(
    qs(origin('ostree-unverified-registry:sensor:stable')),
    `docker.io%2Flibrary%2Fsensor%40sha256%3A${DIGEST.slice(7)}&oci=true`,
  );
  // Without a digest from rpm-ostree: the origin string itself, as a checksum, no oci
  // (src/rpm_ostree/cli_status.rs:92-97,106-111).
  const noDigest = { deployments: [{ ...status.deployments[0]!, 'container-image-reference-digest': null }] };
  assert.is(
    qs(bootedDeployment(noDigest)),
    'ostree-image-signed%3Adocker%3A%2F%2Fquay.io%2Ffedora%2Ffedora-coreos%3Astable',
  );
});

// --- the response ----------------------------------------------------------------------------------

const node = (
  version: string,
  payload: string,
  age: number | string,
  extra: Record<string, string> = {},
): GraphNode => ({
  version,
  payload,
  metadata: {
    'org.fedoraproject.coreos.scheme': 'checksum',
    'org.fedoraproject.coreos.releases.age_index': String(age),
    ...extra,
  },
});

test('parse: serde_json decoding of Graph (src/cincinnati/client.rs:24-36)', () => {
  const ok = parseGraph(
    '{"nodes":[{"version":"1","payload":"p","metadata":{"k":"v","k":"w"},"x":[1.5,{"y":null}]}],"edges":[[0,0]],"signatures":{}}',
  );
  // Unknown fields ignored; a repeated metadata key: the last wins (a HashMap).
  assert.equal(ok, { nodes: [{ version: '1', payload: 'p', metadata: { k: 'w' } }], edges: [[0, 0]] });
  // A struct may also come as an array of its fields (serde-rs/json src/de.rs:1836-1847 @v1.0.149).
  assert.equal(parseGraph('[[["1","p",{}]],[]]'), {
    nodes: [{ version: '1', payload: 'p', metadata: {} }],
    edges: [],
  });
  // Bytes that are not UTF-8 pass in a field Zincati ignores, not in one it keeps (serde-rs/json src/read.rs:598-618).
  const ff = (a: string, b: string) => Buffer.concat([Buffer.from(a), Buffer.from([0xff]), Buffer.from(b)]);
  assert.is(parseGraph(ff('{"nodes":[],"edges":[],"x":"', '"}')).nodes.length, 0);
  const bad = [
    '{}',
    '{"nodes":[]}',
    '{"nodes":[{"version":"1","payload":"p"}],"edges":[]}', // no metadata
    '{"nodes":[{"version":"1","payload":"p","metadata":{"k":1}}],"edges":[]}', // value not a string
    '{"nodes":[{"version":1,"payload":"p","metadata":{}}],"edges":[]}',
    '{"nodes":[],"edges":[[0,1,2]]}',
    '{"nodes":[],"edges":[[0]]}',
    '{"nodes":[],"edges":[[1.0,0]]}', // a float to serde
    '{"nodes":[],"edges":[[-0,0]]}',
    '{"nodes":[],"edges":[[-1,0]]}',
    '{"nodes":[],"edges":[[18446744073709551616,0]]}', // past u64
    '{"nodes":[],"nodes":[],"edges":[]}', // repeated field
    '{"nodes":[{"version":"\\ud800","payload":"p","metadata":{}}],"edges":[]}', // lone surrogate
    '\ufeff{"nodes":[],"edges":[]}', // a BOM
    '{"nodes":[],"edges":[]} x',
    '{"nodes":[],"edges":[],}',
    '[[],[],[]]',
  ];
  for (const body of [...bad, ff('{"nodes":[{"version":"', '","payload":"p","metadata":{}}],"edges":[]}')])
    throws(
      () => parseGraph(body),
      'client_failed_json_decoding',
      // The one message whatever the fault (src/cincinnati/client.rs:273-288).
      'client-side error: failed to decode graph: error decoding response body',
    );
});

/** A server on 127.0.0.1:0 answering with `reply`, recording each request's URL and headers. */
async function serve(
  reply: (url: string) => { status: number; body: string; type?: string },
): Promise<{ base: string; seen: { url: string; headers: IncomingHttpHeaders }[]; server: Server }> {
  const seen: { url: string; headers: IncomingHttpHeaders }[] = [];
  const server = createServer((req, res) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    const r = reply(req.url ?? '');
    res.writeHead(r.status, { 'content-type': r.type ?? 'text/plain' }).end(r.body);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server };
}

test('fetch: GET with accept: application/json; any 2xx decoded, Content-Type not read; errors as Zincati reports them', async () => {
  const graph: Graph = { nodes: [node('1', SHA, 0), node('2', 'b', 1)], edges: [[0, 1]] };
  const { base, seen, server } = await serve((url) => {
    const path = url.split('?')[0];
    if (path === '/ok/v1/graph') return { status: 203, body: JSON.stringify(graph) };
    if (path === '/kind/v1/graph')
      return { status: 466, body: '{"kind":"failure_foo","value":"failed to perform foo"}' };
    if (path === '/bad/v1/graph') return { status: 200, body: '{}', type: 'application/json' };
    return { status: 433, body: '' };
  });
  try {
    const url = graphUrl(`${base}/ok/`, id());
    assert.equal(await fetchGraph(url), graph);
    assert.is(seen[0]!.url, `/ok/v1/graph?${Q}`);
    assert.is(seen[0]!.headers.accept, 'application/json'); // src/cincinnati/client.rs:149
    const fails = async (path: string) => {
      try {
        await fetchGraph(graphUrl(`${base}/${path}/`, id()));
      } catch (err) {
        assert.instance(err, CincinnatiError);
        return [(err as CincinnatiError).kind, (err as CincinnatiError).status, (err as Error).message];
      }
      return assert.unreachable('fetched');
    };
    // The three cases of Zincati's own tests (src/cincinnati/client.rs:233-288), via :166-170.
    assert.equal(await fails('kind'), [
      'failure_foo',
      466,
      'server-side error, code 466: failed to perform foo',
    ]);
    assert.equal(await fails('gone'), [
      'generic_http_433',
      433,
      'server-side error, code 433: (unknown/generic server error)',
    ]);
    assert.equal(await fails('bad'), [
      'client_failed_json_decoding',
      undefined,
      'client-side error: failed to decode graph: error decoding response body',
    ]);
    // One whole check; an error is no update this time (src/cincinnati/mod.rs:142-150).
    assert.is((await checkForUpdate(`${base}/ok/`, id()))?.next?.version, '2');
    assert.is((await checkForUpdate(`${base}/kind/`, id())).reason, 'error');
  } finally {
    server.close();
  }
});

// --- the choice --------------------------------------------------------------------------------------

const A = { version: 'A', checksum: 'a' };
const versions = (g: Graph, booted: Booted, opts = {}) => {
  const r = nextUpdate(g, booted, opts);
  return [r.next?.version, r.reason];
};

test('choice: a chain takes one edge at a time (src/cincinnati/mod.rs:263-273)', () => {
  const g: Graph = {
    nodes: [node('A', 'a', 0), node('B', 'b', 1), node('C', 'c', 2)],
    edges: [
      [0, 1],
      [1, 2],
    ],
  };
  assert.equal(versions(g, A), ['B', undefined]);
  assert.equal(versions(g, { version: 'B', checksum: 'b' }), ['C', undefined]);
  assert.equal(versions(g, { version: 'C', checksum: 'c' }), [undefined, 'no-update-target']);
});

test('choice: behind a barrier, the barrier node; the keys are for the server, not read here', () => {
  // Edges as the server makes them, each back only to the previous barrier (coreos/fedora-coreos-cincinnati
  // commons/src/graph.rs:127-158 @95388bdf): into B (a barrier) from A, into C only from B.
  const barrier = { 'org.fedoraproject.coreos.updates.barrier': 'true' };
  const g: Graph = {
    nodes: [node('A', 'a', 0), node('B', 'b', 1, barrier), node('C', 'c', 2)],
    edges: [
      [0, 1],
      [1, 2],
    ],
  };
  assert.equal(versions(g, A), ['B', undefined]);
  // The same nodes with an edge over the barrier: Zincati takes it, as it never reads the key.
  assert.equal(versions({ ...g, edges: [...g.edges, [0, 2]] }, A), ['C', undefined]);
});

test('choice: a dead-end booted node is reported, with or without a reason (src/cincinnati/mod.rs:256,363-384)', () => {
  const dead = (reason?: string) => ({
    'org.fedoraproject.coreos.updates.deadend': 'true',
    ...(reason !== undefined && { 'org.fedoraproject.coreos.updates.deadend_reason': reason }),
  });
  const g: Graph = { nodes: [node('A', 'a', 0, dead('https://example/215')), node('B', 'b', 1)], edges: [] };
  const r = nextUpdate(g, A);
  assert.equal(
    [r.next, r.reason, r.deadend, r.booted?.version],
    [undefined, 'no-update-target', 'https://example/215', 'A'],
  );
  assert.is(nextUpdate({ ...g, nodes: [node('A', 'a', 0, dead())] }, A).deadend, '(unknown reason)');
  assert.is(
    nextUpdate({ ...g, nodes: [node('A', 'a', 0, { 'org.fedoraproject.coreos.updates.deadend': 'yes' })] }, A)
      .deadend,
    undefined,
  );
});

test('choice: a booted node not in the graph: no update (src/cincinnati/mod.rs:231-245)', () => {
  const g: Graph = { nodes: [node('B', 'b', 1)], edges: [] };
  const r = nextUpdate(g, A);
  assert.equal(
    [r.next, r.reason, r.message],
    [undefined, 'not-in-graph', 'booted deployment a not found in the update graph'],
  );
  // The scheme must match too (:339-357): a checksum host never matches an oci node, nor a node without a scheme.
  assert.is(
    nextUpdate({ nodes: [{ ...node('A', 'a', 0), metadata: {} }], edges: [] }, A).reason,
    'not-in-graph',
  );
  assert.is(
    nextUpdate({ nodes: [node('A', 'a', 0, { 'org.fedoraproject.coreos.scheme': 'oci' })], edges: [] }, A)
      .reason,
    'not-in-graph',
  );
});

test('choice: the highest age_index wins, then version and payload as bytes (src/rpm_ostree/mod.rs:53-75, src/cincinnati/mod.rs:303)', () => {
  const g: Graph = {
    nodes: [node('A', 'a', 0), node('Z', 'z', 3), node('B', 'b', 5), node('Y', 'y', 4)],
    edges: [
      [0, 1],
      [0, 2],
      [0, 3],
    ],
  };
  const r = nextUpdate(g, A);
  assert.equal([r.next?.version, r.targets.map((t) => t.version)], ['B', ['Z', 'Y', 'B']]);
  // Equal age_index: "9" > "10" byte-wise; no version semantics.
  const tie: Graph = {
    nodes: [node('A', 'a', 0), node('10', 'x', 1), node('9', 'y', 1)],
    edges: [
      [0, 1],
      [0, 2],
    ],
  };
  assert.equal(versions(tie, A), ['9', undefined]);
  // A local deployment is skipped (:288-300), the next highest taken.
  const deny = nextUpdate(g, A, { denylist: [A, { version: 'B', checksum: 'b' }] });
  assert.equal([deny.next?.version, deny.ignored], ['Y', 1]);
});

test('choice: a target not newer than the booted node is refused unless downgrades are allowed (src/cincinnati/mod.rs:309-315)', () => {
  const g: Graph = { nodes: [node('A', 'a', 5), node('Old', 'o', 4), node('Same', 's', 5)], edges: [[0, 1]] };
  const r = nextUpdate(g, A);
  assert.equal([r.next, r.reason, r.rejected?.version], [undefined, 'not-newer', 'Old']);
  const allowed = nextUpdate(g, A, { allowDowngrade: true });
  assert.equal([allowed.next?.version, allowed.downgrade], ['Old', true]);
  // Same age, version "A" < "Same": newer by the order, so taken.
  assert.equal(versions({ ...g, edges: [[0, 2]] }, A), ['Same', undefined]);
});

test('choice: oci nodes match the booted registry/repo@digest exactly (src/cincinnati/mod.rs:341-347)', () => {
  const oci = (version: string, payload: string, age: number): GraphNode => ({
    version,
    payload,
    metadata: {
      'org.fedoraproject.coreos.scheme': 'oci',
      'org.fedoraproject.coreos.releases.age_index': String(age),
    },
  });
  const d1 = `sha256:${'1'.repeat(64)}`;
  const d2 = `sha256:${'2'.repeat(64)}`;
  const booted: Booted = { version: '1', image: '127.0.0.1:5000/rocknsm/sensor:stable', digest: d1 };
  const g: Graph = {
    nodes: [
      oci('1', `127.0.0.1:5000/rocknsm/sensor@${d1}`, 0),
      oci('2', `127.0.0.1:5000/rocknsm/sensor@${d2}`, 1),
    ],
    edges: [[0, 1]],
  };
  assert.equal(versions(g, booted), ['2', undefined]);
  // With the tag left in, the node's payload is not the booted pullspec.
  const tagged = { ...g, nodes: [oci('1', `127.0.0.1:5000/rocknsm/sensor:stable@${d1}`, 0), g.nodes[1]!] };
  assert.is(nextUpdate(tagged, booted).reason, 'not-in-graph');
  // The rpm-ostree status route gives the same booted release and denylist.
  const status = {
    deployments: [
      {
        booted: true,
        'container-image-reference': `ostree-unverified-registry:${booted.image}`,
        'container-image-reference-digest': d1,
        checksum: 'c',
        version: '1',
      },
    ],
  };
  assert.equal(bootedDeployment(status), booted);
  assert.is(nextUpdate(g, booted, { denylist: localDeployments(status) }).next?.version, '2');
});

test('choice: errors for what Zincati reads and cannot use; edges it does not follow are not checked', () => {
  const g: Graph = {
    nodes: [node('A', 'a', 0), node('B', 'b', 1)],
    edges: [
      [0, 1],
      [1, 9],
    ],
  };
  assert.equal(versions(g, A), ['B', undefined]);
  throws(
    () => nextUpdate({ ...g, edges: [[0, 7]] }, A),
    'client_failed_node_lookup',
    "client-side error: target node '7' not present in graph",
  );
  const target = (n: GraphNode) => () => nextUpdate({ nodes: [node('A', 'a', 0), n], edges: [[0, 1]] }, A);
  // Release::from_cincinnati (src/rpm_ostree/mod.rs:85-115).
  const m = (extra: Record<string, string>) => ({ ...node('B', 'b', 1), metadata: extra });
  throws(
    target(m({ 'org.fedoraproject.coreos.scheme': 'checksum' })),
    'client_failed_node_parsing',
    'client-side error: missing metadata key: org.fedoraproject.coreos.releases.age_index',
  );
  throws(
    target(node('B', 'b', '-1')),
    'client_failed_node_parsing',
    'client-side error: invalid age_index value: -1',
  );
  throws(
    target(node('B', 'b', 1, { 'org.fedoraproject.coreos.scheme': 'rpm' })),
    'client_failed_node_parsing',
    'client-side error: unexpected payload scheme: rpm',
  );
  throws(
    target(node('B', 'Bad', 1, { 'org.fedoraproject.coreos.scheme': 'oci' })),
    'client_failed_node_parsing',
    'client-side error: invalid reference format',
  );
  throws(target(node('', 'b', 1)), 'client_failed_node_parsing', 'client-side error: empty version field');
  // The booted node must parse too (src/cincinnati/mod.rs:247-248).
  throws(
    () =>
      nextUpdate(
        { ...g, nodes: [m({ 'org.fedoraproject.coreos.scheme': 'checksum' })] },
        { version: 'B', checksum: 'b' },
      ),
    'client_failed_node_parsing',
    'client-side error: missing metadata key: org.fedoraproject.coreos.releases.age_index',
  );
  // Rust's u64 parse takes a leading `+`.
  assert.equal(
    nextUpdate({ nodes: [node('A', 'a', 0), node('B', 'b', '+7')], edges: [[0, 1]] }, A).next?.ageIndex,
    7n,
  );
});

test('references as oci-spec parses them (youki-dev/oci-spec-rs src/distribution/reference.rs:341-398 @v0.7.1)', () => {
  const whole = (s: string) => referenceWhole(parseReference(s));
  assert.equal(
    [
      'busybox',
      'test:5000/repo',
      'test.com:tag',
      'foo/foo_bar.com:8080',
      'b.gcr.io/test.example.com/my-app:test.example.com',
    ].map(whole),
    [
      'docker.io/library/busybox:latest',
      'test:5000/repo:latest',
      'docker.io/library/test.com:tag',
      'docker.io/foo/foo_bar.com:8080',
      'b.gcr.io/test.example.com/my-app:test.example.com',
    ],
  );
  // Not a host by the pattern (a `_`), but a domain to split_domain (a `.`): kept as the registry.
  assert.is(whole('a-b__c.d/x---y'), 'a-b__c.d/x---y:latest');
  for (const [input, err] of [
    [':justtag', 'invalid reference format'],
    ['repo@sha256:ffffffffffffffffffffffffffffffffff', 'invalid checksum digest length'],
    [`validname@invaliddigest:${'f'.repeat(64)}`, 'unsupported digest algorithm'],
    ['Uppercase:tag', 'invalid reference format'],
    ['a'.repeat(256), 'repository name must not be more than 255 characters'],
    [`${'a'.repeat(40)}!`, 'invalid reference format'], // and at once: the pattern stays linear in JS
  ] as const)
    assert.throws(
      () => parseReference(input),
      (e: Error) => e.message === err,
    );
});

test.run();
