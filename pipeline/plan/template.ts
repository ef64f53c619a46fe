// The Containerfile template language: `{{name}}` values and `{{#flag}}...{{/flag}}` blocks
// kept only when the flag is true. Deliberately tiny; everything else is decided in plan code.

export function fillTemplate(
  text: string,
  values: Record<string, string>,
  flags: Record<string, boolean>,
): string {
  const blocks = text.replace(
    /\{\{#(\w+)\}\}\n([\s\S]*?)\{\{\/\1\}\}\n/g,
    (_m, flag: string, body: string) => {
      if (!(flag in flags)) throw new Error(`template flag '${flag}' has no value`);
      return flags[flag] ? body : '';
    },
  );
  return blocks.replace(/\{\{(\w+)\}\}/g, (_m, key: string) => {
    if (!(key in values)) throw new Error(`template value '${key}' has no value`);
    return values[key]!;
  });
}
