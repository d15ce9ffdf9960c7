// `netmon probe`: prints the kernel's records, as the raw contract's payloads
// the sensor publishes, as JSON lines on stdout, the
// chosen attach mode and its reason on stderr.
import { UsageError, checkedFlag, parseFlags, positiveNumberFlag } from '@netmon/common';
import { payloadJson } from './records';
import type { ProbeError } from './errors';
import { ATTACH_MODES, type AttachMode, DEFAULT_RING_BUFFER_BYTES, NetmonProbe, validateMode, validateRingBufferBytes } from './probe';

const USAGE = `usage: netmon probe [--mode ${ATTACH_MODES.join('|')}] [--duration S] [--ring-buffer-bytes N] [--help]

Loads Netmon's kernel probes and prints every record as the sensor publishes it
(socket establish/accept/close, exec, fork, exit) as one JSON line on stdout until --duration seconds pass or
SIGINT/SIGTERM. The attach mode and why it was chosen go to stderr. Needs root
(CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN).

  --mode M               auto (default) | fentry | kprobe | tracepoint
  --duration S           stop after S seconds (default: run until signalled)
  --ring-buffer-bytes N  ring buffer size, power of 2 multiple of 4096 (default ${DEFAULT_RING_BUFFER_BYTES})
`;

export interface ProbeArgs {
  mode: AttachMode;
  durationS?: number;
  ringBufferBytes: number;
}

/** `netmon probe` argv; undefined after printing the usage for --help. Throws UsageError naming the flag. */
export function parseProbeArgs(argv: string[]): ProbeArgs | undefined {
  const flags = parseFlags(argv, { mode: { type: 'string' }, duration: { type: 'string' }, 'ring-buffer-bytes': { type: 'string' } }, USAGE);
  if (!flags) return undefined;
  if (flags.positionals.length > 0) throw new UsageError(`unknown argument ${flags.positionals[0]}`);
  return {
    mode: checkedFlag(flags, 'mode', validateMode) ?? 'auto',
    durationS: positiveNumberFlag(flags, 'duration'),
    // Digits only ("1e6", "0x1000" are refused); anything else is passed as is for the message.
    ringBufferBytes: checkedFlag(flags, 'ring-buffer-bytes', (v) => validateRingBufferBytes(/^\d+$/.test(v) ? Number(v) : v)) ?? DEFAULT_RING_BUFFER_BYTES,
  };
}

/** Runs `netmon probe ARGV`; resolves to the process exit code. */
export async function runProbeCommand(argv: string[]): Promise<number> {
  let args: ProbeArgs | undefined;
  try {
    args = parseProbeArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`netmon probe: ${err.reason}\n${USAGE}`);
    return 2;
  }
  if (!args) return 0; // --help

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
      onPayloads: (payloads) => {
        if (broken || payloads.length === 0) return;
        let text = '';
        for (const p of payloads) text += `${JSON.stringify(payloadJson(p))}\n`;
        out.write(text);
      },
    });
  } catch (err) {
    const e = err as ProbeError;
    process.stderr.write(`netmon probe: ${e.message}\n`);
    return 1;
  }
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
