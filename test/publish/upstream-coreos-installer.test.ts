// What needs stock coreos-installer's own source (coreos/coreos-installer @bee45001, read from a
// git mirror or GitHub like every upstream suite, test/world/upstream.ts): the lines
// test/world/coreos-installer.ts cites say what it does, and, with the keys compiled into it
// (src/signing-keys.asc), it refuses our signed stream with or without --insecure and an image
// with our .sig beside it, over HTTP against a signed publish (test/world/installer-site.ts).
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { download, install, upstreamFile } from '../world/coreos-installer.ts';
import { type InstallerSite, openInstallerSite, refusal } from '../world/installer-site.ts';
import { get } from '../world/published.ts';

let w: InstallerSite;
const base = () => w.base;

test.before(async () => {
  w = await openInstallerSite('upstream-coreos-installer');
});

test.after(async () => {
  await w?.close();
});

test('the cited coreos-installer lines say what the client does', async () => {
  const source = new Map<string, string[]>();
  for (const f of [
    'src/source.rs',
    'src/install.rs',
    'src/download.rs',
    'src/io/verify.rs',
    'src/cmdline/install.rs',
    'src/cmdline/mod.rs',
  ])
    source.set(f, (await upstreamFile(f)).split('\n'));
  const line = (path: string, n: number) => source.get(path)![n - 1]!.trim();
  assert.is(
    line('src/source.rs', 34),
    'const DEFAULT_STREAM_BASE_URL: &str = "https://builds.coreos.fedoraproject.org/streams/";',
  );
  assert.is(line('src/source.rs', 438), '.join(&format!("{stream}.json"))');
  assert.is(line('src/source.rs', 529), 'location: String,');
  assert.is(line('src/source.rs', 530), 'signature: String,');
  assert.is(line('src/source.rs', 97), 'sig_path: format!("{path}.sig"),');
  assert.is(line('src/source.rs', 198), '.map_err(|e| eprintln!("Failed to fetch signature: {e}"))');
  assert.is(line('src/install.rs', 166), '4096 => "4k.raw.xz",');
  assert.is(line('src/install.rs', 167), '512 => "raw.xz",');
  assert.is(line('src/install.rs', 180), '"metal",');
  assert.is(line('src/install.rs', 199), 'bail!("--insecure not specified and signature not found");');
  assert.is(line('src/download.rs', 61), 'bail!("--insecure not specified and signature not found");');
  assert.is(line('src/download.rs', 302), 'verify_reader.verify()?;');
  assert.is(
    line('src/io/verify.rs', 113),
    'VerifyKeys::Production => &include_bytes!("../signing-keys.asc")[..],',
  );
  assert.is(
    line('src/cmdline/install.rs', 224),
    '/// Allow the signature to be absent.  Does not allow an existing',
  );
  assert.is(line('src/cmdline/install.rs', 225), '/// signature to be invalid.');
  assert.is(
    line('src/cmdline/mod.rs', 220),
    '#[arg(short, long, value_name = "name", default_value = "raw.xz")]',
  );
});

test('stock coreos-installer refuses our signed stream, with or without --insecure: our key is not built in', async () => {
  for (const insecure of [false, true]) {
    for (const sectorSize of [512, 4096]) {
      const e = await refusal(
        install({ sectorSize, stream: 'stable', streamBaseUrl: base(), arch: 'x86_64', insecure }),
      );
      assert.match(e.message, 'gpg signature verification failed');
      assert.match(e.message, /No public key|public key not found/);
    }
    const e = await refusal(
      download({ streamBaseUrl: base(), arch: 'aarch64', format: 'qcow2.xz', platform: 'qemu', insecure }),
    );
    assert.match(e.message, 'gpg signature verification failed');
  }
});

test('an image with our .sig beside it is refused even with --insecure: the signature is checked, and fails', async () => {
  const stream = JSON.parse((await get(`${base()}stable.json`)).bytes.toString('utf8'));
  const disk = stream.architectures.x86_64.artifacts.metal.formats['raw.xz'].disk;
  const name = disk.location.split('/').pop();
  const dir = join(w.work, 'dl-sig-beside');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, name), (await get(disk.location)).bytes);
  writeFileSync(join(dir, 'kept.sig'), (await get(disk.signature)).bytes);
  copyFileSync(join(dir, 'kept.sig'), join(dir, `${name}.sig`));
  const e = await refusal(
    install({ sectorSize: 512, imageFile: join(dir, name), arch: 'x86_64', insecure: true }),
  );
  assert.match(e.message, 'gpg signature verification failed');
});

test.run();
