import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseYaml } from '../../pipeline/config/yaml.ts';

test('parseYaml locates values', () => {
  const { source } = parseYaml('a:\n  b: [1, 2]\n', 'x.yaml');
  assert.equal(source!.locate(['a', 'b', 1]), { line: 2, col: 10 });
});
test.run();
