// Registry of subcommands, in the order `rock-image --help` lists them.
import { artifacts } from './artifacts.ts';
import { build } from './build.ts';
import { bundle } from './bundle.ts';
import { ciPlan } from './ci-plan.ts';
import { compose } from './compose.ts';
import { doctor } from './doctor.ts';
import { ignition } from './ignition.ts';
import { installConfig } from './install-config.ts';
import { keys } from './keys.ts';
import { mergeBuilds } from './merge-builds.ts';
import { pin } from './pin.ts';
import { plan } from './plan.ts';
import { promote, rollout } from './promote.ts';
import { prune } from './prune.ts';
import { publish } from './publish.ts';
import { serveGraph } from './serve-graph.ts';
import { summary } from './summary.ts';
import { test } from './test.ts';
import type { Command } from './types.ts';

export const commands: Command[] = [
  build,
  plan,
  doctor,
  compose,
  pin,
  ignition,
  installConfig,
  keys,
  prune,
  artifacts,
  ciPlan,
  mergeBuilds,
  summary,
  publish,
  promote,
  rollout,
  test,
  serveGraph,
  bundle,
  // (new commands are added here, one line each)
];
