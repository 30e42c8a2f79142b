// The CommonJS entry, `require('excise')` (Node 20 cannot require() an ES module without a flag):
// dist/index.cjs, lib/index.ts bundled by esbuild as CommonJS, with the ES-module-only dependencies
// (hyparquet) bundled in and the native ones (tokenizers, @resvg/resvg-js) left to require().
// import.meta.url becomes the bundle's own file URL: dist/index.cjs sits where dist/index.js does, so
// the package root (lib/native.ts) and createRequire() resolve the same.
// Types: dist/**/*.d.ts copied as .d.cts (imports rewritten to .cjs), so TypeScript under
// module nodenext types a require of 'excise' as CommonJS.
// Run after tsc (npm run build:ts).
import { build } from 'esbuild';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');

await build({
  entryPoints: [join(root, 'lib', 'index.ts')],
  outfile: join(dist, 'index.cjs'),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  external: ['tokenizers', '@resvg/resvg-js', 'dejavu-fonts-ttf'],
  define: { 'import.meta.url': '__exciseModuleUrl' },
  banner: { js: "const __exciseModuleUrl = require('node:url').pathToFileURL(__filename).href;" },
  logLevel: 'warning',
});

for (const entry of readdirSync(dist, { recursive: true })) {
  const file = String(entry);
  if (!file.endsWith('.d.ts')) continue;
  const text = readFileSync(join(dist, file), 'utf8')
    .replace(/(from\s+['"]|import\(['"])(\.{1,2}\/[^'"]+)\.js(['"])/g, '$1$2.cjs$3')
    .replace(/^\/\/# sourceMappingURL=.*$/m, '');
  writeFileSync(join(dist, file.replace(/\.d\.ts$/, '.d.cts')), text);
}
