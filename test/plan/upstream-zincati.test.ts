// Zincati does not run here (the test world is Debian's, which has no Zincati), so the drop-ins of
// plan/zincati.ts rest on Zincati's source, each fact cited beside the code as path:line
// @be76c4aa. This test reads those very lines at that commit and checks they say what the code
// assumes: file names, merge order, keys, strategy names, day names, time format, limits, URL
// variables and joining, and that Zincati itself merges overlapping windows.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  CINCINNATI_DROPIN,
  DEFAULT_UPDATE_POLICY,
  UPDATES_DROPIN,
  URL_VARIABLES,
  WEEK_MINUTES,
  WEEKDAYS,
  ZINCATI_STRATEGY,
} from '../../pipeline/plan/zincati.ts';
import { lines } from '../world/upstream.ts';

const Z = 'coreos/zincati';
const AT = 'be76c4aa8822df77124a7377aa32a11a0083732d';
const zl = (path: string, from: number, to = from) => lines(Z, AT, path, from, to);
const name = (path: string) => path.split('/').pop()!;

test('drop-in directories, order and names: ours sort after Zincati and Fedora CoreOS', async () => {
  const dirs = await zl('src/config/mod.rs', 47, 54);
  assert.match(dirs, /"\/usr\/lib\/"[\s\S]*"\/run\/"[\s\S]*"\/etc\/"/);
  assert.match(dirs, 'format!("{}/config.d/", crate_name!())');
  assert.match(dirs, '"toml"');
  const docs = await zl('docs/usage/configuration.md', 11, 20);
  assert.match(docs, 'merged by filename in lexicographic order');
  assert.match(docs, 'later in sorting order can override prior directives');
  assert.match(docs, 'only the last-sorting one is read');
  assert.match(
    await zl('Makefile', 22),
    `install -D -m 644 -t \${DESTDIR}/usr/lib/zincati/config.d dist/config.d/*.toml`,
  );
  assert.match(
    await zl('dist/config.d/50-fedora-coreos-cincinnati.toml', 2, 3),
    /\[cincinnati\]\nbase_url= "https:\/\//,
  );
  assert.ok(CINCINNATI_DROPIN.startsWith('/usr/lib/zincati/config.d/'));
  assert.ok(UPDATES_DROPIN.startsWith('/etc/zincati/config.d/'));
  for (const shipped of [
    '10-agent.toml',
    '10-auto-updates.toml',
    '10-identity.toml',
    '30-updates-strategy.toml',
    '50-fedora-coreos-cincinnati.toml',
  ]) {
    assert.ok(name(CINCINNATI_DROPIN) > shipped, shipped);
    assert.ok(name(UPDATES_DROPIN) > shipped, shipped);
  }
  assert.ok(name(UPDATES_DROPIN) > name(CINCINNATI_DROPIN));
});

test('merging: the last base_url and strategy win; periodic windows add up across files', async () => {
  const merge = await zl('src/config/inputs.rs', 111, 115);
  assert.match(merge, 'if let Some(u) = snip.base_url {\n                cfg.base_url = u;');
  const updates = await zl('src/config/inputs.rs', 200, 236);
  assert.match(updates, 'time_zone: "UTC".to_string()');
  assert.match(updates, 'strategy = s;');
  assert.match(updates, 'periodic.intervals.push(interval);');
});

test('the keys we write are the keys Zincati reads', async () => {
  const f = await zl('src/config/fragments.rs', 9, 96);
  for (const key of [
    'pub(crate) cincinnati: Option<CincinnatiFragment>',
    'pub(crate) identity: Option<IdentityFragment>',
    'pub(crate) updates: Option<UpdateFragment>',
    'pub(crate) base_url: Option<String>',
    'pub(crate) rollout_wariness: Option<NotNan<f64>>',
    'pub(crate) strategy: Option<String>',
    'pub(crate) fleet_lock: Option<UpdateFleetLock>',
    'pub(crate) periodic: Option<UpdatePeriodic>',
    'pub(crate) window: Option<Vec<UpdatePeriodicWindow>>',
    'pub(crate) time_zone: Option<String>',
    'pub(crate) days: BTreeSet<String>',
    'pub(crate) start_time: String',
    'pub(crate) length_minutes: u32',
  ])
    assert.match(f, key);
  assert.not.match(f, 'deny_unknown_fields');
});

test('strategy names, and immediate as the default', async () => {
  assert.match(
    await zl('src/strategy/immediate.rs', 16),
    `LABEL: &'static str = "${ZINCATI_STRATEGY.immediate}"`,
  );
  assert.match(
    await zl('src/strategy/periodic.rs', 43),
    `LABEL: &'static str = "${ZINCATI_STRATEGY.periodic}"`,
  );
  assert.match(
    await zl('src/strategy/fleet_lock.rs', 35),
    `LABEL: &'static str = "${ZINCATI_STRATEGY['fleet-lock']}"`,
  );
  const choose = await zl('src/strategy/mod.rs', 61, 67);
  assert.match(choose, '"" => UpdateStrategy::default()');
  assert.match(choose, 'unsupported strategy');
  assert.match(await zl('src/strategy/mod.rs', 182, 186), 'UpdateStrategy::Immediate(immediate)');
  assert.match(
    await zl('docs/usage/updates-strategy.md', 10),
    'the default updates strategy resolves to `immediate`',
  );
});

test('periodic: day names (tuesday misspelt), HH:MM, lengths from 1 minute to a week, the wrap to Monday', async () => {
  const days = await zl('src/weekly/utils.rs', 72, 85);
  assert.match(days, 'input.to_lowercase()');
  assert.match(days, '"tue" | "tuesady" => Weekday::Tue');
  for (const d of WEEKDAYS) assert.match(days, `"${d.toLowerCase()}" |`);
  const time = await zl('src/weekly/utils.rs', 101, 117);
  assert.match(time, "input.split(':')");
  assert.match(time, 'hour <= 23 && minute <= 59');
  const length = await zl('src/weekly/utils.rs', 60, 69);
  assert.match(length, 'length.as_secs() > MAX_WEEKLY_SECS');
  assert.match(length, 'zero-length duration');
  assert.match(await zl('src/weekly/mod.rs', 22), `MAX_WEEKLY_MINS: u32 = 7 * 24 * 60`);
  assert.is(WEEK_MINUTES, 7 * 24 * 60);
  assert.match(await zl('src/weekly/mod.rs', 27), 'minutes since beginning of week (Monday 00:00)');
  assert.match(await zl('src/weekly/mod.rs', 295, 305), 'wrapped back to Monday start');
  assert.match(await zl('src/strategy/periodic.rs', 60, 63), 'weekly calendar length is zero');
});

test('overlapping windows: Zincati takes and merges them (we refuse them ourselves)', async () => {
  assert.match(await zl('src/weekly/mod.rs', 33), 'possibly overlapping');
  assert.match(await zl('src/weekly/mod.rs', 156, 160), 'Overlapped intervals are coalesced');
  assert.match(
    await zl('docs/usage/updates-strategy.md', 102),
    'multiple entries can be defined with overlapping times',
  );
});

test('time zone: localtime or a name under /usr/share/zoneinfo; UTC by default', async () => {
  const tz = await zl('src/strategy/periodic.rs', 83, 118);
  assert.match(tz, '&cfg.time_zone == "localtime"');
  assert.match(tz, 'Tz::named(&cfg.time_zone)');
  assert.is(DEFAULT_UPDATE_POLICY.timeZone, 'UTC');
  const example = await zl('dist/config.d/30-updates-strategy.toml', 17, 21);
  const w = DEFAULT_UPDATE_POLICY.windows[0]!;
  assert.match(example, `#days = [ ${w.days.map((d) => `"${d}"`).join(', ')} ]`);
  assert.match(example, `#start_time = "${w.startTime}"`);
  assert.match(example, `#length_minutes = ${w.lengthMinutes}`);
});

test('wariness 0..1; URL variables; the stream from com.coreos.stream; v1/graph joined onto base_url', async () => {
  const rw = await zl('src/identity/mod.rs', 70, 77);
  assert.match(rw, '*rw >= 0.0');
  assert.match(rw, '*rw <= 1.0');
  const vars = await zl('src/identity/mod.rs', 121, 130);
  for (const v of URL_VARIABLES) assert.match(vars, `vars.insert("${v}".to_string()`);
  assert.is((vars.match(/vars\.insert/g) ?? []).length, URL_VARIABLES.length);
  assert.match(await zl('src/cincinnati/mod.rs', 118, 125), 'envsubst::substitute(cfg.base_url, &context)');
  assert.match(
    await zl('src/strategy/fleet_lock.rs', 39, 46),
    'envsubst::substitute(cfg.fleet_lock.base_url, &context)',
  );
  assert.match(await zl('src/rpm_ostree/cli_status.rs', 156, 168), 'labels.get("com.coreos.stream")');
  assert.match(await zl('src/cincinnati/client.rs', 21), 'V1_GRAPH_PATH: &str = "v1/graph"');
  assert.match(await zl('src/cincinnati/client.rs', 145), 'self.api_base.clone().join(url_suffix.as_ref())');
  assert.match(await zl('src/fleet_lock/mod.rs', 145), 'self.api_base.clone().join(url_suffix.as_ref())');
  assert.match(await zl('src/fleet_lock/mod.rs', 23), '"v1/pre-reboot"');
  // Unknown ${...} stay as written: only known keys are replaced.
  const envsubst = await lines(
    'coreos/envsubst-rs',
    'af50d1ff89dc23fd86207aa64116ffa9bd64f8b8',
    'src/lib.rs',
    43,
    57,
  );
  assert.match(envsubst, 'for (k, v) in variables');
  assert.match(envsubst, 'output = output.replace(&from, &v)');
  assert.match(await zl('Cargo.lock', 1, 100_000), /name = "envsubst"\nversion = "0\.2\.1"/);
});

test.run();
