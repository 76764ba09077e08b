#!/usr/bin/env node
// The `wpipe` command's launcher (package.json "bin"). It loads the bundle dist/wpipe-cli.js, built
// by `node scripts/build.mjs ts` (npm install runs it in a checkout; the published package ships it).
// In a checkout without dist/ it falls back to the TypeScript source through tsx (a dev dependency).
import { existsSync } from 'node:fs';

const bundle = new URL('../dist/wpipe-cli.js', import.meta.url);
let cli;
if (existsSync(bundle)) {
  cli = await import(bundle.href);
} else {
  try {
    const { register } = await import('tsx/esm/api');
    register();
  } catch {
    process.stderr.write('wpipe: dist/wpipe-cli.js is missing: build it with `node scripts/build.mjs ts` (npm run build:ts)\n');
    process.exit(2);
  }
  cli = await import(new URL('../src/cli.ts', import.meta.url).href);
}
const code = await cli.main(process.argv);
process.exitCode = code;
// Something left running (a step's stray timer, a socket) must not keep a finished command alive.
setTimeout(() => process.exit(code), 2000).unref();
