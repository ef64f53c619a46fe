// Registry of subcommands, in the order `rock-image --help` lists them.
import { doctor } from './doctor.ts';
import type { Command } from './types.ts';

export const commands: Command[] = [
  doctor,
  // (new commands are added here, one line each)
];
