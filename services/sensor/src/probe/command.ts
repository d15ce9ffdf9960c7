// `netmon probe`: prints the decoded raw events as JSON lines on stdout, the
// chosen attach mode and its reason on stderr.
import { eventToJson } from './decode';
import type { ProbeError } from './errors';
import { ATTACH_MODES, type AttachMode, DEFAULT_RING_BUFFER_BYTES, NetmonProbe, validateMode, validateRingBufferBytes } from './probe';

const USAGE = `usage: netmon probe [--mode ${ATTACH_MODES.join('|')}] [--duration S] [--ring-buffer-bytes N] [--help]

Loads Netmon's kernel probes and prints every decoded event (establish, accept,
close, exec, exit) as one JSON line on stdout until --duration seconds pass or
SIGINT/SIGTERM. The attach mode and why it was chosen go to stderr. Needs root
(CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN).

  --mode M               auto (default) | fentry | kprobe | tracepoint
  --duration S           stop after S seconds (default: run until signalled)
  --ring-buffer-bytes N  ring buffer size, power of 2 multiple of 4096 (default ${DEFAULT_RING_BUFFER_BYTES})
`;

interface ProbeArgs {
  mode: AttachMode;
  durationS?: number;
  ringBufferBytes: number;
  help: boolean;
}

function parseArgs(argv: string[]): ProbeArgs {
  const out: ProbeArgs = { mode: 'auto', ringBufferBytes: DEFAULT_RING_BUFFER_BYTES, help: false };
  for (let i = 0; i < argv.length; i++) {
    const raw = argv[i];
    const eq = raw.indexOf('=');
    const flag = raw.startsWith('--') && eq > 0 ? raw.slice(0, eq) : raw;
    const value = (): string => {
      if (raw.startsWith('--') && eq > 0) return raw.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--help':
      case '-h':
        out.help = true;
        break;
      case '--mode':
        out.mode = validateMode(value());
        break;
      case '--duration': {
        const v = value();
        const d = Number(v);
        if (v.trim() === '' || !Number.isFinite(d) || d <= 0) throw new Error(`--duration must be a positive number of seconds, got ${v}`);
        out.durationS = d;
        break;
      }
      case '--ring-buffer-bytes': {
        const v = value();
        out.ringBufferBytes = validateRingBufferBytes(/^\d+$/.test(v) ? Number(v) : Number.NaN);
        break;
      }
      default:
        throw new Error(`unknown argument ${raw}`);
    }
  }
  return out;
}

/** Runs `netmon probe ARGV`; resolves to the process exit code. */
export async function runProbeCommand(argv: string[]): Promise<number> {
  let args: ProbeArgs;
  try {
    args = parseArgs(argv);
  } catch (err) {
    process.stderr.write(`netmon probe: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }

  let offset = 0n;
  let broken = false;
  const out = process.stdout;
  out.on('error', () => {
    broken = true; // EPIPE: the reader went away; stop below
  });
  let probe: NetmonProbe;
  try {
    probe = NetmonProbe.start({
      mode: args.mode,
      ringBufferBytes: args.ringBufferBytes,
      onEvents: (events) => {
        if (broken || events.length === 0) return;
        let text = '';
        for (const ev of events) text += `${JSON.stringify(eventToJson(ev, offset))}\n`;
        out.write(text);
      },
    });
  } catch (err) {
    const e = err as ProbeError;
    process.stderr.write(`netmon probe: ${e.message}\n`);
    return 1;
  }
  offset = probe.clockOffsetNs;
  process.stderr.write(`netmon probe: mode ${probe.mode} (${probe.reason})\n`);

  await new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      clearInterval(pipeCheck);
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      resolve();
    };
    const timer = args.durationS !== undefined ? setTimeout(done, args.durationS * 1000) : undefined;
    const pipeCheck = setInterval(() => {
      if (broken) done();
    }, 200);
    process.on('SIGINT', done);
    process.on('SIGTERM', done);
  });
  await probe.stop();
  const lost = probe.lost();
  process.stderr.write(`netmon probe: stopped; lost ${lost.total} (${JSON.stringify(lost)})\n`);
  if (!broken) await new Promise<void>((r) => (out.writableLength === 0 ? r() : out.once('drain', () => r())));
  return 0;
}
