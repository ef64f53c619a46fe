// sgdisk: writes a GPT partition table into a disk image file. `sgdiskArgs` is pure (the plan
// and tests read it); `partition` runs it, `printTable` reads a table back.
import type { Runner } from './run.ts';
import { requireTool } from './tools.ts';

export interface GptPartition {
  number: number;
  label: string;
  /** First sector (512-byte sectors). */
  start: number;
  /** Size in sectors. */
  sectors: number;
  typeGuid: string;
  /** Unique partition GUID; fixed so images are reproducible. */
  guid: string;
}

export interface GptTable {
  diskGuid: string;
  partitions: GptPartition[];
}

/** The sgdisk arguments that create `table` on an empty file (no sgdisk-side alignment choices). */
export function sgdiskArgs(table: GptTable, file: string): string[] {
  const args = ['--zap-all', '--disk-guid', table.diskGuid];
  for (const p of table.partitions) {
    args.push(
      '--new',
      `${p.number}:${p.start}:${p.start + p.sectors - 1}`,
      '--change-name',
      `${p.number}:${p.label}`,
      '--typecode',
      `${p.number}:${p.typeGuid}`,
      '--partition-guid',
      `${p.number}:${p.guid}`,
    );
  }
  return [...args, file];
}

export async function partition(run: Runner, table: GptTable, file: string, tag?: string): Promise<void> {
  requireTool('sgdisk');
  await run('sgdisk', sgdiskArgs(table, file), { tag });
}

/** `sgdisk --print` of an image (used by tests and for the log). */
export async function printTable(run: Runner, file: string): Promise<string> {
  return (await run('sgdisk', ['--print', file])).stdout;
}
