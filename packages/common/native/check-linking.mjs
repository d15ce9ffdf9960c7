// The batch addon calls librdkafka on @confluentinc/kafka-javascript's own
// handles: both must use one librdkafka, the shared one that library builds
// with CKJS_LINKING=dynamic. A statically linked build (its default) holds a
// private copy, and the addon would drive its handles with another: refused
// here, before anything is built.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const root = path.dirname(require.resolve('@confluentinc/kafka-javascript/package.json'));
const binding = path.join(root, 'build/Release/confluent-kafka-javascript.node');
let deps = '';
try {
  deps = execFileSync('ldd', [binding], { encoding: 'utf8' });
} catch (err) {
  console.error(`check-linking: cannot list the libraries of ${binding}: ${err.message}`);
  process.exit(1);
}
const line = deps.split('\n').find((l) => l.includes('librdkafka.so.1'));
if (!line?.includes(path.join(root, 'build'))) {
  console.error(
    `check-linking: ${binding} does not load librdkafka.so.1 from ${path.join(root, 'build/deps')}` +
      ' (a static build). Reinstall it dynamically linked: CKJS_LINKING=dynamic npm ci (scripts/setup.sh does).',
  );
  process.exit(1);
}
