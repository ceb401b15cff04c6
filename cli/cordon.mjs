#!/usr/bin/env node
// The `cordon` bin. Cordon runs on the Node 24 that `npm install` puts in node_modules; npx and npm
// scripts put it first on PATH. Refuse an older Node clearly rather than fail obscurely.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(`cordon needs Node.js 24 (this is ${process.version}). Run it through npx or npm scripts, which use the project's node@24.\n`);
  process.exit(1);
}
await import('./main.ts');
