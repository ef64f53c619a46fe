// Parse YAML keeping source positions, and validate it against a JSON Schema with every error
// pointing at the file, line and column of the offending value.
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { isMap, isNode, isPair, isScalar, LineCounter, type Node, parseDocument } from 'yaml';
import type { ConfigIssue } from '../errors.ts';

export type JsonPath = (string | number)[];

/** A parsed YAML file that can say where any value in it came from. */
export interface SourceFile {
  file: string;
  data: unknown;
  /** Line and column (1-based) of the value at `path`, or of its nearest existing parent. */
  locate(path: JsonPath, key?: boolean): { line: number; col: number };
}

export function readYaml(file: string, displayName = file): { source?: SourceFile; issues: ConfigIssue[] } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return { issues: [{ file: displayName, path: '', rule: 'readable', message: (err as Error).message }] };
  }
  return parseYaml(text, displayName);
}

export function parseYaml(text: string, file: string): { source?: SourceFile; issues: ConfigIssue[] } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true, strict: true });
  const issues: ConfigIssue[] = [...doc.errors, ...doc.warnings].map((e) => {
    const pos = e.linePos?.[0];
    return {
      file,
      line: pos?.line,
      col: pos?.col,
      path: '',
      rule: 'yaml-syntax',
      message: e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, ''),
    };
  });
  if (doc.errors.length) return { issues };
  const at = (offset: number) => lineCounter.linePos(offset);
  const source: SourceFile = {
    file,
    data: doc.toJS({ maxAliasCount: 100 }),
    locate(path, key = false) {
      // Walk down as far as the path exists; report the deepest node found.
      let node: unknown = doc.contents;
      let keyNode: Node | undefined;
      for (const segment of path) {
        if (isMap(node)) {
          const pair = node.items.find(
            (p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(segment),
          );
          if (!pair) break;
          keyNode = pair.key as Node;
          node = pair.value;
        } else if (node && typeof node === 'object' && 'items' in node && Array.isArray(node.items)) {
          const next = node.items[Number(segment)];
          if (next === undefined) break;
          keyNode = undefined;
          node = next;
        } else break;
      }
      const target = key && keyNode ? keyNode : isNode(node) ? node : keyNode;
      const offset = target?.range?.[0] ?? 0;
      return at(offset);
    },
  };
  return { source, issues };
}

const ajv = new Ajv({ strict: true, allErrors: true, allowUnionTypes: true, useDefaults: false });

export function compileSchema(schema: object): ValidateFunction {
  const id = (schema as { $id?: string }).$id;
  return (id && ajv.getSchema(id)) || ajv.compile(schema);
}

/** Validates a parsed file; returns one issue per schema violation, positioned in the file. */
export function schemaIssues(source: SourceFile, validate: ValidateFunction): ConfigIssue[] {
  if (validate(source.data)) return [];
  return (validate.errors ?? []).filter(meaningful).map((e) => toIssue(source, e));
}

// `if`/`then` wrappers repeat what the inner error already says.
const meaningful = (e: ErrorObject) => e.keyword !== 'if';

function pointerToPath(pointer: string): JsonPath {
  if (!pointer) return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function valueAt(data: unknown, path: JsonPath): unknown {
  let v: unknown = data;
  for (const s of path) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[s] : undefined;
  return v;
}

function toIssue(source: SourceFile, e: ErrorObject): ConfigIssue {
  const path = pointerToPath(e.instancePath);
  const p = e.params as Record<string, unknown>;
  let message = e.message ?? 'invalid';
  let value: unknown = valueAt(source.data, path);
  let pos = source.locate(path);
  let pointer = e.instancePath;
  switch (e.keyword) {
    case 'additionalProperties': {
      const extra = String(p.additionalProperty);
      pos = source.locate([...path, extra], true);
      pointer = `${e.instancePath}/${extra}`;
      message = `unknown key '${extra}'`;
      value = undefined;
      break;
    }
    case 'required':
      message = `missing required key '${String(p.missingProperty)}'`;
      value = undefined;
      break;
    case 'enum':
      message = `must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
      break;
    case 'propertyNames':
      pos = source.locate([...path, String(p.propertyName)], true);
      message = `key '${String(p.propertyName)}' is not allowed here`;
      value = undefined;
      break;
    case 'type':
      message = `must be ${String(p.type)}`;
      break;
    case 'pattern':
      // A URL field's pattern (lock-server, update-url, artifact-url, site-url) refusing the
      // scheme: say so, rather than print the regex. Other failures of it keep the pattern.
      if (String(p.pattern).startsWith('^https?://') && !/^https?:\/\//.test(String(value)))
        message = 'must be an http:// or https:// URL';
      break;
    default:
      break;
  }
  return {
    file: source.file,
    line: pos.line,
    col: pos.col,
    path: pointer || '/',
    rule: e.keyword,
    message,
    value,
  };
}
