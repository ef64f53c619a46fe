// The image lint's bound-images check on real trees: what bootc reads in
// /usr/lib/bootc/bound-images.d (symlinks named *.container or *.image, resolved inside the
// root, to a quadlet whose Image= has no specifiers), and ours on top: pinned by digest.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { lintBoundImages } from '../../pipeline/lint/image.ts';

const scratch = mkdtempSync(join(tmpdir(), 'rock-bound-test-'));
test.after(() => rmSync(scratch, { recursive: true, force: true }));
const D = `sha256:${'3'.repeat(64)}`;

/** A root with one quadlet per `images` entry and `links` (name -> target) in bound-images.d. */
function root(
  images: Record<string, string>,
  links: Record<string, string>,
  files: Record<string, string> = {},
) {
  const r = mkdtempSync(join(scratch, 'root-'));
  mkdirSync(join(r, 'usr/share/containers/systemd'), { recursive: true });
  mkdirSync(join(r, 'usr/lib/bootc/bound-images.d'), { recursive: true });
  for (const [name, image] of Object.entries(images))
    writeFileSync(
      join(r, 'usr/share/containers/systemd', name),
      name.endsWith('.image')
        ? `[Image]\nImage=${image}\n`
        : `[Unit]\nDescription=x\n[Container]\nImage=${image}\n`,
    );
  for (const [name, target] of Object.entries(links))
    symlinkSync(target, join(r, 'usr/lib/bootc/bound-images.d', name));
  for (const [name, text] of Object.entries(files))
    writeFileSync(join(r, 'usr/lib/bootc/bound-images.d', name), text);
  return r;
}
const messages = (r: string) => lintBoundImages(r).map((f) => `${f.path}: ${f.message}`);
const Q = '/usr/share/containers/systemd';

test('absolute and relative links to pinned .container and .image files pass', () => {
  const r = root(
    { 'a.container': `quay.io/x/a@${D}`, 'b.image': `127.0.0.1:5000/x/b@${D}` },
    { 'a.container': `${Q}/a.container`, 'b.image': `../../../share/containers/systemd/b.image` },
  );
  assert.equal(messages(r), []);
  assert.equal(messages(mkdtempSync(join(scratch, 'empty-'))), [], 'no directory: nothing to check');
});

test('what bootc refuses, and a tag, are findings at the link', () => {
  const dir = '/usr/lib/bootc/bound-images.d';
  const r = root(
    {
      'tag.container': 'quay.io/x/a:1',
      'spec.container': `quay.io/x/%i@${D}`,
      'ok.container': `quay.io/x/a@${D}`,
    },
    {
      'tag.container': `${Q}/tag.container`,
      'spec.container': `${Q}/spec.container`,
      'wrong.service': `${Q}/ok.container`,
      'dangling.container': `${Q}/missing.container`,
    },
    { 'file.container': `[Container]\nImage=quay.io/x/a@${D}\n` },
  );
  assert.equal(messages(r).sort(), [
    `${dir}/dangling.container: the link does not resolve to a file inside the image`,
    `${dir}/file.container: not a symlink (bootc accepts only links to quadlet files)`,
    `${dir}/spec.container: Image=quay.io/x/%i@${D}: bootc refuses systemd specifiers`,
    `${dir}/tag.container: Image=quay.io/x/a:1 is not pinned by digest`,
    `${dir}/wrong.service: bootc reads only links named *.container or *.image`,
  ]);
});

test('a link whose quadlet has no Image= in its section', () => {
  const r = root({}, { 'x.container': `${Q}/x.container` });
  writeFileSync(
    join(r, `${Q}/x.container`),
    '[Unit]\nDescription=x\n[Service]\nImage=quay.io/x/a@sha256:00\n',
  );
  assert.equal(messages(r), [
    '/usr/lib/bootc/bound-images.d/x.container: no Image= in the [Container] section',
  ]);
});

test.run();
