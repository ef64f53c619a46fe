// The update graph rests on two upstream programs that do not run here: Fedora CoreOS's
// graph server (pipeline/publish/graph.ts, publish/graph-service.ts and publish/siphash.ts cite
// coreos/fedora-coreos-cincinnati @95388bdf) and Zincati (test/world/zincati.ts, the client the
// service is tested with, cites coreos/zincati @be76c4aa and coreos/envsubst-rs v0.2.1). This
// test reads every line those files cite in these three repositories, at those commits, and checks
// that it holds the code or text the rule rests on (a token per citation, not just the file).
// A last test finds the citations in the source files themselves, so a new or moved citation
// without a check here fails. Citations of other libraries (reqwest, url, serde_json, oci-spec,
// ostree-ext, ordered-float, Rust's std) have no mirror and are not checked here; their versions
// are checked against Zincati's Cargo.lock.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { META } from '../../pipeline/publish/graph.ts';
import { repoRoot } from '../world/fcos-base.ts';
import { lines } from '../world/upstream.ts';
import {
  AGE_INDEX_KEY,
  DEADEND_KEY,
  DEADEND_REASON_KEY,
  DEFAULT_GROUP,
  HTTP_TIMEOUT_MS,
  REQUEST_HEADERS,
  SCHEME_KEY,
  V1_GRAPH_PATH,
} from '../world/zincati.ts';

const CIN = 'coreos/fedora-coreos-cincinnati';
const ZIN = 'coreos/zincati';
const ENV = 'coreos/envsubst-rs';
const COMMIT: Record<string, string> = {
  [CIN]: '95388bdf6d52f4084846bbd7c6f22b314f3c553a',
  [ZIN]: 'be76c4aa8822df77124a7377aa32a11a0083732d',
  // v0.2.1, the version Zincati's Cargo.lock pins (checked below).
  [ENV]: 'af50d1ff89dc23fd86207aa64116ffa9bd64f8b8',
};

/** [path, lines as cited ("12", "12-20", "24,27,30,33"), tokens each cited line range must hold]. */
type Cite = [string, string, string[]];

const cincinnati: Cite[] = [
  ['commons/src/graph.rs', '10', ['pub metadata: HashMap<String, String>']],
  ['commons/src/graph.rs', '16-19', ['pub nodes: Vec<CincinnatiPayload>', 'pub edges: Vec<(u64, u64)>']],
  ['commons/src/graph.rs', '23-108', ['pub fn from_metadata(', 'policy::filter_deadends(graph)']],
  [
    'commons/src/graph.rs',
    '28-36',
    ['.enumerate()', '.filter_map(|(age_index, entry)|', 'age_index.to_string()'],
  ],
  [
    'commons/src/graph.rs',
    '41-53',
    [
      'oci_image.architecture != scope.basearch',
      'oci_image.digest_ref.is_empty()',
      'continue;',
      'current.payload = oci_image.digest_ref;',
      '"oci".to_string()',
    ],
  ],
  ['commons/src/graph.rs', '54-56', ["This release doesn't have OCI images, skip it.", 'return None;']],
  ['commons/src/graph.rs', '83-85', ['if !has_basearch {', 'return None;']],
  [
    'commons/src/graph.rs',
    '87-94',
    ['Self::inject_deadend_reason', 'Self::inject_barrier_reason', 'Self::inject_throttling_params'],
  ],
  ['commons/src/graph.rs', '101', ['let edges = Self::compute_edges(&nodes)?;']],
  ['commons/src/graph.rs', '105', ['let final_graph = policy::filter_deadends(graph);']],
  ['commons/src/graph.rs', '111-161', ['fn compute_edges(', 'Ok(edges)']],
  ['commons/src/graph.rs', '119-124', ['contains_key(metadata::ROLLOUT)', 'contains_key(metadata::BARRIER)']],
  ['commons/src/graph.rs', '129-144', ['nodes.iter().enumerate().rev()', 'edges.push((i, age))']],
  ['commons/src/graph.rs', '135-139', ['Bound::Excluded(age)', '.next_back()', '.unwrap_or(0)']],
  [
    'commons/src/graph.rs',
    '147-158',
    ['let mut start = 0;', 'if rollouts.contains(&target)', 'edges.push((i, target))', 'start = target;'],
  ],
  [
    'commons/src/graph.rs',
    '163-184',
    ['fn inject_barrier_reason', '"generic"', 'metadata::BARRIER.to_string(), true.to_string()'],
  ],
  [
    'commons/src/graph.rs',
    '163-236',
    ['fn inject_barrier_reason', 'fn inject_deadend_reason', 'fn inject_throttling_params'],
  ],
  [
    'commons/src/graph.rs',
    '186-207',
    ['fn inject_deadend_reason', '"generic"', 'metadata::DEADEND.to_string(), true.to_string()'],
  ],
  [
    'commons/src/graph.rs',
    '209-236',
    [
      'fn inject_throttling_params',
      'metadata::ROLLOUT.to_string(), true.to_string()',
      'rollout.start_epoch',
      'rollout.start_percentage',
      'rollout.duration_minutes',
    ],
  ],
  ['commons/src/graph.rs', '227', ['.insert(metadata::START_VALUE.to_string(), val.to_string())']],
  ['commons/src/metadata.rs', '12-24', Object.values(META).map((k) => `"${k}"`)],
  [
    'commons/src/policy.rs',
    '6-23',
    [
      'pub fn filter_deadends',
      'metadata::DEADEND) == Some(&"true".into())',
      'graph.edges.retain(|(from, _to)|',
    ],
  ],
  ['commons/src/policy.rs', '26-89', ['pub fn throttle_rollouts(input: Graph, client_wariness: f64)']],
  ['commons/src/policy.rs', '29', ['let now = chrono::Utc::now().timestamp();']],
  [
    'commons/src/policy.rs',
    '32-55',
    ['metadata::START_EPOCH', 'metadata::START_VALUE', 'metadata::DURATION'],
  ],
  ['commons/src/policy.rs', '37-41', ['epoch.parse::<i64>().unwrap_or(0)', 'None => 0i64']],
  ['commons/src/policy.rs', '43-47', ['val.parse::<f64>().unwrap_or(0f64)', 'None => 0f64']],
  [
    'commons/src/policy.rs',
    '49-55',
    ['let mut minutes: Option<u64> = None;', 'mins.parse::<u64>()', 'Some(m.max(1))'],
  ],
  [
    'commons/src/policy.rs',
    '57-75',
    [
      'let end = start_epoch + (mins.saturating_mul(60)) as i64;',
      'let rate = (1.0 - start_value) / (end.saturating_sub(start_epoch)) as f64;',
      'if now < start_epoch {\n                throttling = 0.0;',
      '} else if now > end {\n                throttling = 1.0;',
      'throttling = start_value + rate * (now - start_epoch) as f64;',
      'throttling = start_value\n',
    ],
  ],
  ['commons/src/policy.rs', '77-79', ['if client_wariness > throttling {', 'hidden.insert(index);']],
  ['commons/src/policy.rs', '82-85', ['graph.edges.retain(|(_from, to)|', '!hidden.contains(&index)']],
  [
    'fcos-policy-engine/src/main.rs',
    '128-134',
    [
      'pub struct GraphQuery',
      'basearch: Option<String>',
      'stream: Option<String>',
      'rollout_wariness: Option<String>',
      'node_uuid: Option<String>',
      'oci: Option<bool>',
    ],
  ],
  [
    'fcos-policy-engine/src/main.rs',
    '170-171',
    [
      'let throttled_graph = policy::throttle_rollouts(cached_graph, wariness);',
      'let final_graph = policy::filter_deadends(throttled_graph);',
    ],
  ],
  [
    'fcos-policy-engine/src/main.rs',
    '182-216',
    ['fn compute_wariness(params: &GraphQuery) -> f64', 'wariness\n}'],
  ],
  [
    'fcos-policy-engine/src/main.rs',
    '186-195',
    ['.rollout_wariness', '.parse::<f64>()', 'input.clamp(0.0, 1.0)'],
  ],
  ['fcos-policy-engine/src/main.rs', '197-201', ['.node_uuid', '.unwrap_or_default()']],
  [
    'fcos-policy-engine/src/main.rs',
    '202-213',
    [
      'DefaultHasher::new()',
      'let scaled = (digest as f64) / (u64::MAX as f64);',
      'scaled.clamp(COMPUTED_MIN, COMPUTED_MAX)',
    ],
  ],
  [
    'fcos-policy-engine/src/main.rs',
    '203-205',
    ['const COMPUTED_MIN: f64 = 0.0 + 0.000_001;', 'const COMPUTED_MAX: f64 = 1.0;'],
  ],
  [
    'fcos-policy-engine/src/main.rs',
    '206-208',
    ['let mut hasher = DefaultHasher::new();', 'uuid.hash(&mut hasher);', 'hasher.finish()'],
  ],
  [
    'commons/src/web.rs',
    '26-59',
    [
      'pub fn validate_scope(',
      'err_msg("missing basearch")',
      '"empty basearch"',
      'err_msg("missing stream")',
      '"empty stream"',
      'let oci = oci.unwrap_or_default();',
    ],
  ],
  [
    'commons/src/web.rs',
    '46-56',
    ['allowlist.contains(&scope)', "scope not allowed: basearch='{}', stream='{}', oci='{}'"],
  ],
  ['fcos-graph-builder/src/scraper.rs', '64', ['pause_secs: NonZeroU64::new(30)']],
];

const zincati: Cite[] = [
  ['src/cincinnati/client.rs', '18', ['Duration::from_secs(30 * 60)']],
  ['src/cincinnati/client.rs', '21', [`static V1_GRAPH_PATH: &str = "${V1_GRAPH_PATH}";`]],
  [
    'src/cincinnati/client.rs',
    '24-29',
    [
      'pub struct Node {',
      'pub version: String,',
      'pub payload: String,',
      'pub metadata: HashMap<String, String>,',
    ],
  ],
  [
    'src/cincinnati/client.rs',
    '33-36',
    ['pub struct Graph {', 'pub nodes: Vec<Node>,', 'pub edges: Vec<(u64, u64)>,'],
  ],
  [
    'src/cincinnati/client.rs',
    '40-45',
    ['pub struct GraphJsonError {', 'pub(crate) kind: String,', 'pub(crate) value: String,'],
  ],
  [
    'src/cincinnati/client.rs',
    '49-64',
    ['pub enum CincinnatiError {', 'Graph(reqwest::StatusCode, GraphJsonError)'],
  ],
  [
    'src/cincinnati/client.rs',
    '68-78',
    [
      'format!("generic_http_{}", status.as_u16())',
      '"client_failed_build"',
      '"client_failed_json_decoding"',
      '"client_failed_node_lookup"',
      '"client_failed_node_parsing"',
      '"client_failed_request"',
    ],
  ],
  ['src/cincinnati/client.rs', '81-91', ['"(unknown/generic server error)"', '=> err.clone()']],
  [
    'src/cincinnati/client.rs',
    '105-109',
    [
      'format!("server-side error, code {}", s)',
      '"client-side error"',
      'write!(f, "{}: {}", context, self.error_value())',
    ],
  ],
  ['src/cincinnati/client.rs', '121', ['query_params: HashMap<String, String>']],
  ['src/cincinnati/client.rs', '145', ['self.api_base.clone().join(url_suffix.as_ref())']],
  ['src/cincinnati/client.rs', '149', [`.header("accept", "${REQUEST_HEADERS.accept}")`]],
  ['src/cincinnati/client.rs', '150', ['.query(&self.query_params)']],
  [
    'src/cincinnati/client.rs',
    '159-163',
    ['if status.is_success()', 'response.json::<Graph>()', 'format!("failed to decode graph: {}", e)'],
  ],
  ['src/cincinnati/client.rs', '159', ['if status.is_success() {']],
  [
    'src/cincinnati/client.rs',
    '166-170',
    ['response.json::<GraphJsonError>()', 'Err(CincinnatiError::Http(status))'],
  ],
  [
    'src/cincinnati/client.rs',
    '215-216',
    ['reqwest::Url::parse(&self.api_base)', 'format!("failed to parse \'{}\'"'],
  ],
  ['src/cincinnati/client.rs', '273-288', ['"failed to decode graph: error decoding response body"']],
  [
    'src/cincinnati/mod.rs',
    '24,27,30,33',
    [AGE_INDEX_KEY, SCHEME_KEY, DEADEND_KEY, DEADEND_REASON_KEY].map((k) => `&str = "${k}";`),
  ],
  ['src/cincinnati/mod.rs', '113-125', ['pub(crate) fn with_config(cfg: inputs::CincinnatiInput']],
  ['src/cincinnati/mod.rs', '114-115', ['if cfg.base_url.is_empty()', '"empty Cincinnati base URL"']],
  [
    'src/cincinnati/mod.rs',
    '119-125',
    [
      'envsubst::is_templated(&cfg.base_url)',
      'envsubst::validate_vars(&context)?',
      'envsubst::substitute(cfg.base_url, &context)',
    ],
  ],
  [
    'src/cincinnati/mod.rs',
    '133-174',
    ['pub(crate) fn fetch_update_hint(', 'failed to check Cincinnati for updates', 'None'],
  ],
  ['src/cincinnati/mod.rs', '216-318', ['fn find_update(', 'Ok(Some(next))']],
  [
    'src/cincinnati/mod.rs',
    '231-245',
    [
      '.find(|(_, node)| is_same_checksum(node, &booted_depl))',
      '"booted deployment {} not found in the update graph"',
    ],
  ],
  [
    'src/cincinnati/mod.rs',
    '247-248',
    ['Release::from_cincinnati(cur_node.clone())', 'CincinnatiError::FailedNodeParsing'],
  ],
  ['src/cincinnati/mod.rs', '256', ['evaluate_deadend(cur_node)']],
  ['src/cincinnati/mod.rs', '260', ['find_denylisted_releases(&graph, denylisted_depls)']],
  [
    'src/cincinnati/mod.rs',
    '276-281',
    [
      'graph.nodes.get(pos)',
      '"target node \'{}\' not present in graph"',
      'CincinnatiError::FailedNodeLookup',
    ],
  ],
  [
    'src/cincinnati/mod.rs',
    '283-284',
    ['Release::from_cincinnati(node)', 'CincinnatiError::FailedNodeParsing'],
  ],
  [
    'src/cincinnati/mod.rs',
    '289-300',
    ['updates.difference(&denylisted_releases)', 'UPDATE_TARGETS_IGNORED'],
  ],
  ['src/cincinnati/mod.rs', '303-306', ['new_updates.last().cloned()']],
  [
    'src/cincinnati/mod.rs',
    '309-315',
    [
      'if next <= cur_release',
      '"downgrade hint towards target release \'{}\'"',
      'if !allow_downgrade',
      '"update hint rejected, downgrades are not allowed by configuration"',
    ],
  ],
  [
    'src/cincinnati/mod.rs',
    '321-336',
    ['fn find_denylisted_releases', 'local_payloads.contains(&release.payload)'],
  ],
  [
    'src/cincinnati/mod.rs',
    '339-357',
    ['fn is_same_checksum(', 'local_imgref == &node.payload', 'checksum == &node.payload', '_ => false,'],
  ],
  [
    'src/cincinnati/mod.rs',
    '363-384',
    ['fn evaluate_deadend(', '.map(|v| v == "true")', '"(unknown reason)"'],
  ],
  ['src/config/inputs.rs', '194', ['let mut allow_downgrade = false;']],
  ['src/identity/mod.rs', '16', [`static DEFAULT_GROUP: &str = "${DEFAULT_GROUP}";`]],
  ['src/identity/mod.rs', '16,60-62', ['"default"', 'if !cfg.group.is_empty()', 'id.group = cfg.group;']],
  [
    'src/identity/mod.rs',
    '37-52',
    [
      'pub(crate) struct Identity {',
      'pub(crate) basearch: String,',
      'pub(crate) group: String,',
      'pub(crate) node_uuid: id128::Id128,',
      'pub(crate) platform: String,',
      'pub(crate) rollout_wariness: Option<NotNan<f64>>,',
      'pub(crate) stream: String,',
    ],
  ],
  [
    'src/identity/mod.rs',
    '70-77',
    [
      'if let Some(rw) = cfg.rollout_wariness',
      '"unexpected negative rollout wariness: {}"',
      '"unexpected overlarge rollout wariness: {}"',
    ],
  ],
  ['src/identity/mod.rs', '71-72', ['*rw >= 0.0', '*rw <= 1.0']],
  ['src/identity/mod.rs', '96', ['coreos_stream_metadata::this_architecture()']],
  [
    'src/identity/mod.rs',
    '121-130',
    ['pub fn url_variables(&self)', 'vars.insert("basearch"', 'vars.insert("stream"'],
  ],
  ['src/identity/mod.rs', '133-154', ['pub fn cincinnati_params(&self) -> HashMap<String, String>']],
  [
    'src/identity/mod.rs',
    '135-151',
    // In the order test/world/zincati.ts graphQuery writes them (checked below).
    [
      'vars.insert("basearch"',
      'vars.insert("os_version"',
      'vars.insert("group"',
      'vars.insert("node_uuid"',
      'vars.insert("platform"',
      'vars.insert("stream"',
      'vars.insert("os_checksum"',
      'vars.insert("oci".to_string(), "true".to_string())',
      'vars.insert("rollout_wariness"',
    ],
  ],
  ['src/identity/mod.rs', '138', ['self.node_uuid.lower_hex()']],
  ['src/identity/mod.rs', '150-152', ['if let Some(rw) = self.rollout_wariness', '"rollout_wariness"']],
  ['src/identity/mod.rs', '151', ['format!("{:.06}", rw)']],
  [
    'src/identity/mod.rs',
    '178-190',
    [
      'static VALID_GROUP: &str = "^[a-zA-Z0-9.-]+$";',
      "\"invalid group label '{}': not conforming to expression '{}'\"",
    ],
  ],
  [
    'src/identity/platform.rs',
    '12-34',
    ['static CMDLINE_PLATFORM_FLAG: &str = "ignition.platform.id";', 'find_flag_value('],
  ],
  [
    'src/rpm_ostree/mod.rs',
    '26-33',
    ['pub struct Release {', 'pub version: String,', 'pub age_index: Option<u64>,'],
  ],
  [
    'src/rpm_ostree/mod.rs',
    '53-75',
    [
      'self_age.cmp(&other_age)',
      'self.version.cmp(&other.version)',
      'self_payload.cmp(&other.payload.to_string())',
    ],
  ],
  [
    'src/rpm_ostree/mod.rs',
    '85-115',
    [
      'pub fn from_cincinnati(node: Node) -> Result<Self>',
      '"empty version field"',
      '"empty payload field (checksum)"',
      '"missing metadata key: {}", SCHEME_KEY',
      'OCI_SCHEME => Payload::Pullspec(node.payload.parse()?)',
      '"unexpected payload scheme: {}"',
      '"invalid age_index value: {}"',
    ],
  ],
  ['src/rpm_ostree/mod.rs', '105', ['val.parse::<u64>()']],
  [
    'src/rpm_ostree/cli_status.rs',
    '69-80',
    [
      'booted: bool,',
      'container_image_reference: Option<String>,',
      'container_image_reference_digest: Option<String>,',
      'base_checksum: Option<String>,',
      'checksum: String,',
      'staged: bool,',
      'version: String,',
    ],
  ],
  [
    'src/rpm_ostree/cli_status.rs',
    '92-103',
    [
      'pub fn into_release(self) -> Release',
      'self.get_container_image_reference_digest()',
      'Payload::Checksum(self.base_revision())',
    ],
  ],
  [
    'src/rpm_ostree/cli_status.rs',
    '92-103,124-135',
    [
      'Payload::Pullspec(reference)',
      '(Some(imgref), Some(digest))',
      'reference.clone_with_digest(digest.clone())',
    ],
  ],
  [
    'src/rpm_ostree/cli_status.rs',
    '106-111',
    [
      'self.container_image_reference',
      '.or(self.base_checksum.clone())',
      '.unwrap_or_else(|| self.checksum.clone())',
    ],
  ],
  [
    'src/rpm_ostree/cli_status.rs',
    '124-135',
    [
      'pub fn get_container_image_reference_digest(&self) -> Option<Reference>',
      'reference.clone_with_digest(digest.clone())',
    ],
  ],
  ['src/rpm_ostree/cli_status.rs', '130', ['imgref.imgref.name.parse().ok()']],
  [
    'src/rpm_ostree/cli_status.rs',
    '156-188',
    ['labels.get("com.coreos.stream")', 'a.get("fedora-coreos.stream")'],
  ],
  ['src/rpm_ostree/cli_status.rs', '226-237', ['if omit_staged && entry.staged', 'continue;']],
  [
    'src/rpm_ostree/cli_status.rs',
    '251-262',
    ['.find(|d| d.booted)', '"no booted deployment found"', '"empty base revision"', '"empty version"'],
  ],
  [
    'src/rpm_ostree/cli_status.rs',
    '406-409',
    ['get_container_image_reference_digest()', '"quay.io/fedora/fedora-coreos@sha256:'],
  ],
  ['src/update_agent/actor.rs', '274-279', ['self.local_deployments().await', 'state.denylist = depls;']],
  ['src/update_agent/actor.rs', '274-279,447', ['QueryLocalDeployments { omit_staged: true }']],
];

const envsubst: Cite[] = [
  [
    'src/lib.rs',
    '52-58',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Rust's format string, as written there
    ['for (k, v) in variables', 'let from = format!("${{{}}}", k);', 'output = output.replace(&from, &v)'],
  ],
  ['src/lib.rs', '64-75', ['pub fn is_templated', 'find("${")', "find('}')", '(Some(s), Some(e)) => s < e']],
  ['src/lib.rs', '82-88', ['pub fn validate_vars', 'validate(k, "key")?;', 'validate(v, "value")?;']],
  [
    'src/lib.rs',
    '82-88,95-105',
    ['let forbidden = &["$", "{", "}"];', "\"variable {} '{}' contains forbidden character '{}'\""],
  ],
];

const TABLE: Record<string, Cite[]> = { [CIN]: cincinnati, [ZIN]: zincati, [ENV]: envsubst };

/** The text of the cited lines: each range of `spec` in turn, joined by newlines. */
async function cited(repo: string, path: string, spec: string): Promise<string> {
  const parts: string[] = [];
  for (const r of spec.split(',')) {
    const [from, to] = r.split('-').map(Number) as [number, number | undefined];
    parts.push(await lines(repo, COMMIT[repo]!, path, from, to ?? from));
  }
  return parts.join('\n');
}

for (const [repo, cites] of Object.entries(TABLE))
  test(`${repo} @${COMMIT[repo]!.slice(0, 8)}: every cited line holds what we rely on`, async () => {
    const wrong: string[] = [];
    for (const [path, spec, tokens] of cites) {
      const text = await cited(repo, path, spec);
      for (const t of tokens) if (!text.includes(t)) wrong.push(`${path}:${spec} lacks ${JSON.stringify(t)}`);
    }
    assert.equal(wrong, []);
  });

test('compute_edges and inject_*: in the order graph.ts follows', async () => {
  const calls = await cited(CIN, 'commons/src/graph.rs', '87-94');
  const at = (s: string) => calls.indexOf(s);
  assert.ok(at('inject_deadend_reason') < at('inject_barrier_reason'));
  assert.ok(at('inject_barrier_reason') < at('inject_throttling_params'));
  // Rollouts first (newest down), then barriers.
  const edges = await cited(CIN, 'commons/src/graph.rs', '111-161');
  assert.ok(edges.indexOf('.rev()') < edges.indexOf('for target in barriers'));
});

test("Zincati's query parameters, in the order the test client sends them", async () => {
  const text = await cited(ZIN, 'src/identity/mod.rs', '135-151');
  const keys = [...text.matchAll(/vars\.insert\("([a-z_]+)"/g)].map((m) => m[1]);
  assert.equal(keys, [
    'basearch',
    'os_version',
    'group',
    'node_uuid',
    'platform',
    'stream',
    'os_checksum',
    'os_checksum',
    'oci',
    'rollout_wariness',
  ]);
  assert.is(HTTP_TIMEOUT_MS, 30 * 60 * 1000);
});

test("the library versions test/world/zincati.ts names are the ones in Zincati's Cargo.lock", async () => {
  const lock = await cited(ZIN, 'Cargo.lock', '1-100000');
  const src = readFileSync(join(repoRoot, 'test/world/zincati.ts'), 'utf8');
  for (const [name, version] of [
    ['url', '2.5.8'],
    ['reqwest', '0.12.28'],
    ['serde_json', '1.0.149'],
    ['envsubst', '0.2.1'],
    ['ordered-float', '5.1.0'],
    ['oci-spec', '0.7.1'],
    ['ostree-ext', '0.15.3'],
  ] as const) {
    assert.ok(lock.includes(`name = "${name}"\nversion = "${version}"\n`), `${name} ${version}`);
    assert.ok(src.includes(`${name} ${version}`), `zincati.ts names ${name} ${version}`);
  }
});

// --- every citation in the source files is in the table above ----------------------------------------

const OWNER_REPO =
  /\b(coreos\/zincati|coreos\/envsubst-rs|coreos\/fedora-coreos-cincinnati|seanmonstar\/reqwest|servo\/rust-url|youki-dev\/oci-spec-rs|ostreedev\/ostree-rs-ext|serde-rs\/json|reem\/rust-ordered-float|rust-lang\/rust)\b/g;
const ZINCATI_DIRS =
  /^src\/(cincinnati|identity|rpm_ostree|update_agent|config|strategy|fleet_lock|weekly)\//;

/**
 * The citations in `text` as [repo, path, lines]: `path.rs:lines` (a bare file name is the last
 * full path with that name), and `:lines` alone after one, for the last file named. The repo is
 * the last owner/name written before the citation (Zincati's own directories are Zincati's),
 * else `fallback`.
 */
function citations(text: string, fallback: string): [string, string, string][] {
  const out: [string, string, string][] = [];
  const re =
    /([\w./-]+\.(?:rs|lock)):((?:\d+(?:-\d+)?)(?:,\d+(?:-\d+)?)*)|(?<=[\s(,])(?:same file )?:((?:\d+(?:-\d+)?)(?:,\d+(?:-\d+)?)*)\b/g;
  const full = new Map<string, string>();
  let last: [string, string] | undefined;
  for (const m of text.matchAll(re)) {
    const before = text.slice(0, m.index);
    const mentions = [...before.matchAll(OWNER_REPO)];
    let repo = mentions.at(-1)?.[1] ?? fallback;
    if (m[1]) {
      let path = m[1];
      if (ZINCATI_DIRS.test(path)) repo = ZIN;
      if (!path.includes('/')) path = full.get(`${repo} ${path}`) ?? path;
      else full.set(`${repo} ${path.split('/').pop()}`, path);
      last = [repo, path];
      out.push([repo, path, m[2]!]);
    } else if (last) out.push([last[0], last[1], m[3]!]);
  }
  return out;
}

test('every citation of these three repositories in the source is checked here', () => {
  const missing: string[] = [];
  for (const [file, fallback] of [
    ['pipeline/publish/graph.ts', CIN],
    ['pipeline/publish/graph-service.ts', CIN],
    ['pipeline/publish/siphash.ts', CIN],
    ['test/world/zincati.ts', ZIN],
  ] as const) {
    const found = citations(readFileSync(join(repoRoot, file), 'utf8'), fallback);
    assert.ok(found.length > 0, file);
    for (const [repo, path, spec] of found) {
      const cites = TABLE[repo];
      if (!cites) continue;
      const parts = (s: string) => s.split(',');
      // A citation is covered when every range of it is a range (or part of a range list) checked here.
      const covered = parts(spec).every((r) =>
        cites.some(([p, s]) => p === path && (s === spec || parts(s).includes(r))),
      );
      if (!covered) missing.push(`${file}: ${repo} ${path}:${spec}`);
    }
  }
  assert.equal(missing, []);
});

test.run();
