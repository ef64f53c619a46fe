// conditional-include conditions (`<var> <op> <value>`) and packages entries, parsed and
// evaluated as rpm-ostree does. Pure.
import { cmp, type VarValue } from './treefile-keys.ts';

export type Cond = { variable: string; op: '==' | '!=' | '<' | '<=' | '>' | '>='; value: VarValue };
export const OPS = ['==', '!=', '<', '<=', '>', '>='];
export const COND_RE = /^\s*([A-Za-z0-9_]+)\s*(\S+?)\s*(?:(true)|(false)|([0-9]+)|"(.*)")\s*$/;

/** Parses `<var> <op> <value>` like rpm-ostree's IncludeCondition deserializer. */
export function parseCondition(text: string): Cond | { rule: string; message: string } {
  const m = COND_RE.exec(text);
  if (!m)
    return {
      rule: 'condition-syntax',
      message: `invalid condition: ${text} (expected <var> <op> <value>; strings in double quotes)`,
    };
  const op = m[2]!;
  if (!OPS.includes(op))
    return { rule: 'condition-operator', message: `expected one of ==, !=, >, >=, <, <= but got ${op}` };
  let value: VarValue;
  if (m[3]) value = true;
  else if (m[4]) value = false;
  else if (m[5] !== undefined) {
    const n = Number(m[5]);
    if (!Number.isSafeInteger(n)) return { rule: 'condition-syntax', message: `number too large: ${m[5]}` };
    value = n;
  } else value = m[6]!;
  return { variable: m[1]!, op: op as Cond['op'], value };
}

/** Evaluates a condition; an object means an error (undefined variable, type mismatch, bad op). */
export function evaluateCondition(
  text: string,
  vars: Map<string, VarValue>,
): boolean | { rule: string; message: string } {
  const c = parseCondition(text);
  if ('rule' in c) return c;
  if (!vars.has(c.variable)) {
    return {
      rule: 'undefined-variable',
      message: `undefined variable '${c.variable}'; defined so far: ${[...vars.keys()].sort(cmp).join(', ')}`,
    };
  }
  const val = vars.get(c.variable)!;
  if (typeof val !== typeof c.value) {
    return {
      rule: 'condition-type',
      message: `${c.variable} (${typeof val} ${JSON.stringify(val)}) is not the same type as ${JSON.stringify(c.value)}`,
    };
  }
  switch (c.op) {
    case '==':
      return val === c.value;
    case '!=':
      return val !== c.value;
  }
  if (typeof val !== 'number')
    return {
      rule: 'condition-operator',
      message: `invalid op ${c.op} for values '${val}' and '${c.value}' (only numbers are ordered)`,
    };
  const b = c.value as number;
  return c.op === '<' ? val < b : c.op === '<=' ? val <= b : c.op === '>' ? val > b : val >= b;
}

/** Splits a packages entry on whitespace unless inside single quotes; null on an unterminated quote. */
export function splitPackages(entry: string): string[] | null {
  const out: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < entry.length; i++) {
    if (entry[i] !== "'") continue;
    if (quoted) out.push(entry.slice(start, i));
    else out.push(...entry.slice(start, i).split(/\s+/).filter(Boolean));
    quoted = !quoted;
    start = i + 1;
  }
  if (quoted) return null;
  out.push(...entry.slice(start).split(/\s+/).filter(Boolean));
  return out;
}
