#!/usr/bin/env node
// The one command-line entry of Netmon; the code lives in cli/.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'; // we know Node 20's SDK support ends
// librdkafka's blocking calls (consume, transactions, watermarks) each hold a
// libuv pool thread, 4 by default; a call librdkafka never answers holds one
// for good (services/enricher/src/rdkafka.ts). Read when the pool first starts.
process.env.UV_THREADPOOL_SIZE ??= '16';
require('../cli/dist/src/main.js')
  .main(process.argv.slice(2))
  .then(
    (code) => {
      // Services have stopped cleanly by now; a client library's stray timer
      // must not keep the process alive. But stdout to a pipe is written
      // asynchronously: exit only once what was printed has gone out.
      process.exitCode = code;
      const exit = () => process.exit(code);
      if (process.stdout.writableLength === 0) exit();
      else process.stdout.write('', exit);
    },
    (err) => {
      process.stderr.write(`netmon: ${err?.stack ?? err}\n`);
      process.exitCode = 1;
    },
  );
