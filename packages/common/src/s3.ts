// One place that turns S3Settings into an S3 client. The SDK is loaded on the
// first call, not at import: the sensor and enricher never pay for it.
//
// s3.ca_file: the client trusts the CAs of that PEM bundle (and only them) for
// an https endpoint, through its own https.Agent given to the SDK's
// NodeHttpHandler; certificate checks stay on (no NODE_TLS_REJECT_UNAUTHORIZED).
// A connection that fails before any HTTP answer (an untrusted certificate, TLS
// against a plain port, plain HTTP against a TLS port) becomes one
// S3ConnectionError naming the endpoint, the cause and the setting to check.
import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import type { S3Client } from '@aws-sdk/client-s3';
import type { S3Settings } from './config';
import { NetmonError } from './errors';

/** S3 could not be spoken to at all: no HTTP answer (TLS or protocol), with the reason. */
export class S3ConnectionError extends NetmonError {
  constructor(
    /** The endpoint URL, or "AWS S3 (region)". */
    readonly endpoint: string,
    /** Node's or OpenSSL's code of the underlying failure, e.g. SELF_SIGNED_CERT_IN_CHAIN. */
    readonly code: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(`S3 at ${endpoint}: ${reason}`, options);
  }
}

export interface S3ClientOptions {
  /** SDK attempts per call (default: the SDK's, 3). */
  maxAttempts?: number;
  /** TCP connect timeout, ms (default: none). */
  connectionTimeoutMs?: number;
  /** Socket idle timeout of a request, ms (default: none). */
  requestTimeoutMs?: number;
}

/** The CA bundle of s3.ca_file (config.ts checked it at load; this reads it again, at client creation). */
function readCaFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new NetmonError(`s3.ca_file: cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
}

export function createS3Client(settings: S3Settings, opts: S3ClientOptions = {}): S3Client {
  // The SDK warns on every start that Node 20 support ends; we know.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const { S3Client: Client } = require('@aws-sdk/client-s3') as typeof import('@aws-sdk/client-s3');
  const handler = {
    ...(settings.caFile ? { httpsAgent: new Agent({ keepAlive: true, maxSockets: 50, ca: readCaFile(settings.caFile) }) } : {}),
    ...(opts.connectionTimeoutMs !== undefined ? { connectionTimeout: opts.connectionTimeoutMs } : {}),
    ...(opts.requestTimeoutMs !== undefined ? { requestTimeout: opts.requestTimeoutMs } : {}),
  };
  const client = new Client({
    region: settings.region,
    endpoint: settings.endpoint || undefined,
    forcePathStyle: settings.forcePathStyle,
    credentials: settings.credentials,
    // S3-compatible servers may not know the newer checksum headers.
    requestChecksumCalculation: settings.endpoint ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED',
    responseChecksumValidation: settings.endpoint ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED',
    // NodeHttpHandler's options: the SDK makes the handler with them.
    ...(Object.keys(handler).length > 0 ? { requestHandler: handler } : {}),
    ...(opts.maxAttempts !== undefined ? { maxAttempts: opts.maxAttempts } : {}),
  });
  // First in the stack: it sees the error the caller would, after the SDK's retries.
  client.middlewareStack.add(
    (next) => async (args) => {
      try {
        return await next(args);
      } catch (err) {
        throw explainS3ConnectionError(err, settings) ?? err;
      }
    },
    { step: 'initialize', priority: 'high', name: 'netmonExplainConnectionErrors' },
  );
  return client;
}

/** The certificate did not verify against the trusted CAs (OpenSSL's verify codes, as Node names them). */
const UNTRUSTED = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
]);

function codeOf(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && typeof e === 'object' && depth < 5; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string') return e.code;
  }
  return undefined;
}

/**
 * An S3ConnectionError for a failure that got no HTTP answer and that a setting
 * explains (certificates, TLS, protocol); undefined for anything else (the
 * server's answers, an unreachable server: the callers have their own words).
 */
export function explainS3ConnectionError(err: unknown, settings: Pick<S3Settings, 'endpoint' | 'region' | 'caFile'>): S3ConnectionError | undefined {
  const e = err as { $response?: unknown; $metadata?: { httpStatusCode?: number } };
  if (!err || typeof err !== 'object' || err instanceof S3ConnectionError || e.$response || e.$metadata?.httpStatusCode) return undefined;
  const code = codeOf(err);
  if (!code) return undefined;
  const endpoint = settings.endpoint || `AWS S3 (${settings.region})`;
  const https = !settings.endpoint || settings.endpoint.startsWith('https:');
  let reason: string | undefined;
  if (UNTRUSTED.has(code)) {
    reason = settings.caFile
      ? `TLS: the server's certificate does not verify against the CAs of s3.ca_file ${settings.caFile} (${code}); is that the CA that signed it?`
      : `TLS: the server's certificate does not verify against Node's built-in CAs (${code}); for a private CA, set s3.ca_file to its PEM bundle`;
  } else if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
    reason = `TLS: the server's certificate ${code === 'CERT_HAS_EXPIRED' ? 'has expired' : 'is not valid yet'} (${code})`;
  } else if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    reason = `TLS: the server's certificate is not issued for the endpoint's host (${code})`;
  } else if (https && (code === 'EPROTO' || code.startsWith('ERR_SSL_'))) {
    const plain =
      /WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|HTTP_REQUEST/.test(code) ||
      /wrong version number|packet length too long|http request/i.test(String((err as Error).message));
    reason = `TLS handshake failed (${code})${plain ? ': the server does not speak TLS on this port; a plain-HTTP port? (s3.endpoint says https://)' : ''}`;
  } else if (!https && code.startsWith('HPE_')) {
    reason = `the answer is not HTTP (${code}): a TLS port? (s3.endpoint says http://; an HTTPS server needs https://)`;
  }
  if (reason === undefined) return undefined;
  // OpenSSL's messages end in a newline: the cause stays on the one line too.
  if (err instanceof Error) err.message = err.message.replace(/\s+/g, ' ').trim();
  return new S3ConnectionError(endpoint, code, reason, { cause: err });
}
