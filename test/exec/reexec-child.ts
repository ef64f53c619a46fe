// Child of test/exec/mount-namespace.test.ts: a rock-image run that re-executes itself
// (reexecInMountNamespace) with `node BIN ARGS...`; the test kills this process outright.
import { reexecInMountNamespace } from '../../pipeline/exec/mount-namespace.ts';

const [bin, ...argv] = process.argv.slice(2);
process.exitCode = await reexecInMountNamespace(bin!, argv, process.env);
