// One place that turns S3Settings into an S3 client. The SDK is loaded on the
// first call, not at import: the sensor and enricher never pay for it.
import type { S3Client } from '@aws-sdk/client-s3';
import type { S3Settings } from './config';

export function createS3Client(settings: S3Settings): S3Client {
  // The SDK warns on every start that Node 20 support ends; we know.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const { S3Client: Client } = require('@aws-sdk/client-s3') as typeof import('@aws-sdk/client-s3');
  return new Client({
    region: settings.region,
    endpoint: settings.endpoint || undefined,
    forcePathStyle: settings.forcePathStyle,
    credentials: settings.credentials,
    // S3-compatible servers may not know the newer checksum headers.
    requestChecksumCalculation: settings.endpoint ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED',
    responseChecksumValidation: settings.endpoint ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED',
  });
}
