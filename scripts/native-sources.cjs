// A fingerprint of the sources a native addon is compiled from (native/**, CMakeLists.txt,
// binding.gyp): sha256 over each file's path and bytes, in sorted order. scripts/prebuild.sh records
// it beside the prebuilt addon; the install step uses the prebuilt only when the shipped sources have
// the same fingerprint, and CI fails when prebuilds/ was not remade after a native change.
//   node scripts/native-sources.cjs        prints the fingerprint of this tree
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const packageRoot = path.join(__dirname, '..');

function listFiles(dir) {
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listFiles(full));
    else if (entry.isFile()) out.push(full);
  }
  return out;
}

/** The fingerprint of the native sources under root (default: this package). */
function nativeSourcesHash(root = packageRoot) {
  const files = [...listFiles(path.join(root, 'native')), path.join(root, 'CMakeLists.txt'), path.join(root, 'binding.gyp')]
    .filter((f) => fs.existsSync(f))
    .map((f) => path.relative(root, f).split(path.sep).join('/'))
    .sort();
  const hash = crypto.createHash('sha256');
  for (const rel of files) {
    hash.update(rel + '\0');
    hash.update(fs.readFileSync(path.join(root, rel)));
    hash.update('\0');
  }
  return hash.digest('hex');
}

module.exports = { nativeSourcesHash };

if (require.main === module) console.log(nativeSourcesHash());
