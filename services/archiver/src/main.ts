#!/usr/bin/env node
// `node services/archiver/dist/src/main.js --config FILE`: the archiver as its
// own process (what `netmon archiver` runs; tests spawn it to kill -9 it).
import { ConfigError } from '@netmon/common';
import { runArchiverCommand } from './command';

runArchiverCommand(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`netmon archiver: bad configuration: ${err.message}\n`);
      process.exit(78);
    }
    process.stderr.write(`netmon archiver: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
