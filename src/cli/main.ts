#!/usr/bin/env node
// placeholder entry; replaced by the CLI (src/cli/program.ts)
console.log('dbc');
