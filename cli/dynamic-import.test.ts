import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rewriteDynamicImports } from './dynamic-import.ts';

test("import() calls become the runtime's loader, told the module's name; import( in strings, comments, regexps and property names is left alone", async () => {
  const source = [
    'const s = "import(1)"; // import(2)',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: JavaScript source, as text
    'const t = `import(3) ${await import(`./lang/${l}.js`)}`;',
    "const r = /import(/; o.import(4); import.meta.url; import.source('x');",
    "const m = await import /* gap */ ('./a.js', { with: { type: 'json' } });",
    "import x from './y.js';",
  ].join('\n');
  const out = await rewriteDynamicImports({ name: 'dir/main.js', type: 'esm', content: source });
  assert.equal(
    out.content,
    [
      'const s = "import(1)"; // import(2)',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: JavaScript source, as text
      'const t = `import(3) ${await __cordonImport("dir/main.js", `./lang/${l}.js`)}`;',
      "const r = /import(/; o.import(4); import.meta.url; import.source('x');",
      "const m = await __cordonImport(\"dir/main.js\", './a.js', { with: { type: 'json' } });",
      "import x from './y.js';",
    ].join('\n'),
  );
  const text = { name: 't.txt', type: 'text' as const, content: 'import("x")' };
  assert.equal(await rewriteDynamicImports(text), text, 'only JavaScript modules');
});
