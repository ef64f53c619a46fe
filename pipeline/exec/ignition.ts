// ignition-validate: the Ignition project's own validator. Any output (errors or "Unused key"
// warnings, which mean a field the chosen spec does not have) counts as a failure, because a
// field Ignition ignores is a layout the sensor silently does not get.

import type { Runner } from './run.ts';
import { requireTool } from './tools.ts';

export interface ValidateResult {
  ok: boolean;
  /** One line per problem, as ignition-validate prints them (`error at $.path, line L col C: ...`). */
  messages: string[];
}

/** Validates an Ignition config file with the real ignition-validate. */
export async function validateIgnitionFile(run: Runner, file: string): Promise<ValidateResult> {
  const bin = requireTool('ignition-validate');
  const r = await run(bin, [file], { allowFailure: true });
  const messages = `${r.stdout}\n${r.stderr}`
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return { ok: r.exitCode === 0 && messages.length === 0, messages };
}
