// Where things are: the user's default data dir and the package's own files (scripts, cached test image).
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const defaultDataDir = (): string => join(os.homedir(), '.dbc');

/** the package root: dist/src/cli/paths.js -> ../../../ */
export const packageRoot = (): string => fileURLToPath(new URL('../../../', import.meta.url));
