// JSON Schemas of the published metadata (schema/*.json, written from the upstream field lists in
// formats.md §5–§6): every document is checked before it is written, so a bad one never lands.
import { readFileSync } from 'node:fs';
import { Ajv, type ValidateFunction } from 'ajv';
import { DataError } from '../errors.ts';

export type DocKind = 'stream' | 'release' | 'releases' | 'updates' | 'graph';
export const docKinds: DocKind[] = ['stream', 'release', 'releases', 'updates', 'graph'];

const schemaFile = (kind: DocKind) => new URL(`./schema/${kind}.schema.json`, import.meta.url);

let compiled: Map<DocKind, ValidateFunction> | undefined;

function validators(): Map<DocKind, ValidateFunction> {
  if (compiled) return compiled;
  const ajv = new Ajv({ strict: true, allErrors: true });
  for (const k of docKinds)
    ajv.addSchema(JSON.parse(readFileSync(schemaFile(k), 'utf8')), `${k}.schema.json`);
  compiled = new Map(docKinds.map((k) => [k, ajv.getSchema(`${k}.schema.json`)!]));
  return compiled;
}

/** Problems of `doc` against the schema of `kind`, as `<pointer>: <message>` lines; [] when valid. */
export function problems(kind: DocKind, doc: unknown): string[] {
  const v = validators().get(kind)!;
  if (v(doc)) return [];
  return (v.errors ?? []).map(
    (e) =>
      `${e.instancePath || '/'}: ${e.keyword}: ${e.message}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`,
  );
}

/** Throws (exit 65) naming the file and each broken rule when `doc` does not validate. */
export function checkDoc(kind: DocKind, file: string, doc: unknown): void {
  const p = problems(kind, doc);
  if (p.length)
    throw new DataError(
      `${file}: refusing to write: does not match ${kind}.schema.json:\n${p.map((l) => `  ${l}`).join('\n')}`,
    );
}
