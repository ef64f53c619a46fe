// The RockNSM compose tree (manifests/compose, shaped like fedora-coreos-config) flattened per
// stream and arch, compared with reviewed golden files. Regenerate on purpose: UPDATE_GOLDEN=1.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { flattenTreefile, type VarValue } from '../../pipeline/plan/treefile.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const golden = join(root, 'test/golden/treefile');
const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : undefined);

const variants: { name: string; variables: Record<string, VarValue> }[] = [
  { name: 'rocknsm-stable', variables: { stream: 'stable', prod: true } },
  { name: 'rocknsm-next', variables: { stream: 'next', prod: true } },
  { name: 'rocknsm-dev', variables: { stream: 'next', prod: false } },
];

for (const v of variants) {
  for (const arch of ['x86_64', 'aarch64']) {
    test(`${v.name}.${arch} matches its golden file`, () => {
      const r = flattenTreefile({
        file: join(root, 'manifests/compose/manifest.yaml'),
        basearch: arch,
        read,
        variables: v.variables,
      });
      const text = `${JSON.stringify({ variables: r.variables, treefile: r.treefile }, null, 2)}\n`;
      const path = join(golden, `${v.name}.${arch}.json`);
      if (process.env.UPDATE_GOLDEN === '1') {
        mkdirSync(golden, { recursive: true });
        writeFileSync(path, text);
      }
      assert.ok(existsSync(path), `missing ${path}; run with UPDATE_GOLDEN=1 and review it`);
      assert.fixture(text, readFileSync(path, 'utf8'));
    });
  }
}

test('stream variables select the conditional includes', () => {
  const flat = (variables: Record<string, VarValue>, arch = 'x86_64') =>
    flattenTreefile({ file: join(root, 'manifests/compose/manifest.yaml'), basearch: arch, read, variables });
  const stable = flat({ stream: 'stable', prod: true });
  const next = flat({ stream: 'next', prod: true });
  const dev = flat({ stream: 'next', prod: false });
  const pk = (r: ReturnType<typeof flat>) => r.treefile.packages as string[];
  assert.ok(!pk(stable).includes('zram-generator-defaults') && pk(next).includes('zram-generator-defaults'));
  assert.ok(pk(dev).includes('strace') && !pk(next).includes('strace'));
  assert.ok((stable.treefile['exclude-packages'] as string[]).includes('gdb-minimal'));
  assert.is(stable.treefile.ref, 'rocknsm/x86_64/base/stable');
  assert.ok(pk(flat({ stream: 'stable', prod: true }, 'aarch64')).includes('grub2-efi-aa64'));
  assert.ok(!pk(flat({ stream: 'stable', prod: true }, 'aarch64')).includes('microcode_ctl'));
  assert.equal(dev.treefile['add-commit-metadata'], {
    'rocknsm.development': true,
    'rocknsm.stream': 'next',
    'rocknsm.variant': 'base',
  });
});

test.run();
