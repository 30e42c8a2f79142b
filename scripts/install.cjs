#!/usr/bin/env node
// `npm install excise` / `npm rebuild excise`: makes the native addon for the LibTorch found now
// (scripts/find-libtorch.cjs): the shipped prebuilt when it fits, else a compile with node-gyp.
// Never fails the install: with no LibTorch (or a failed compile) it prints the one command that
// finishes the job, and loading excise says the same (ERR_NATIVE_LOAD).
//
// npm hides an install script's output unless it fails (or --foreground-scripts), and a compile
// takes minutes: progress also goes to the terminal (/dev/tty) when there is one.
'use strict';
const fs = require('fs');
const path = require('path');
const { build, checkAddon, commands, paths } = require('./native-addon.cjs');
const { locate } = require('./find-libtorch.cjs');

let tty = null;
if (!process.stderr.isTTY) {
  try { tty = fs.openSync('/dev/tty', 'w'); } catch { /* no terminal (CI): npm shows stderr on failure only */ }
}
function log(line) {
  const text = line.split('\n').map((l) => `excise: ${l}\n`).join('');
  process.stderr.write(text);
  if (tty !== null) { try { fs.writeSync(tty, text); } catch { tty = null; } }
}

async function main() {
  if (process.env.EXCISE_SKIP_INSTALL === '1') return;
  const rebuilding = process.env.npm_command === 'rebuild';
  // An install that finds a local build made for the LibTorch located now keeps it (a clone's cmake-js
  // build, or an earlier `excise build`); `npm rebuild` always builds anew.
  const current = checkAddon();
  if (!rebuilding && current.kind === 'built' && !current.problem && current.record) {
    let root = null;
    try { root = locate().root; } catch { /* none found now: keep what works */ }
    if (root === null || fs.realpathSync(root) === fs.realpathSync(current.record.torchRoot)) {
      log(`the addon in ${path.dirname(paths.built)} is up to date (LibTorch ${current.record.torchVersion}); \`npm rebuild excise\` rebuilds it`);
      return;
    }
  }
  const result = await build({ log });
  if (result.ok) return;
  if (result.reason === 'no-libtorch') {
    log(result.message.replace(/^No LibTorch found/, 'no LibTorch found, so the native addon is not built yet'));
    log('');
    log(`finish the install with:  ${commands.setup}`);
    log(`(${commands.setup} --cuda for a CUDA build; --libtorch DIR or --python PATH to use a LibTorch you have)`);
    return;
  }
  log(`the native addon could not be built; fix the cause above, then run:  ${commands.build}`);
}

main().catch((err) => {
  log(`unexpected error: ${err && err.stack || err}`);
  log(`run \`${commands.build}\` to retry`);
}).finally(() => { process.exitCode = 0; });
