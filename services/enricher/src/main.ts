#!/usr/bin/env node
// Stand-alone entry: node services/enricher/dist/src/main.js --config FILE
// (what `netmon enricher` runs; used by the tests as a child process).
import { ConfigError } from '@netmon/common';
import { runEnricherCommand } from './command';

runEnricherCommand(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`netmon enricher: bad configuration: ${err.message}\n`);
      process.exit(78);
    }
    process.stderr.write(`netmon enricher: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
