// Registry of subcommands, in the order `rock-image --help` lists them.
import { artifacts } from './artifacts.ts';
import { build } from './build.ts';
import { compose } from './compose.ts';
import { doctor } from './doctor.ts';
import { ignition } from './ignition.ts';
import { plan } from './plan.ts';
import { prune } from './prune.ts';
import type { Command } from './types.ts';

export const commands: Command[] = [
  build,
  plan,
  doctor,
  compose,
  ignition,
  prune,
  artifacts,
  // (new commands are added here, one line each)
];
