// One place that turns S3Settings into an S3 client.
import { S3Client } from '@aws-sdk/client-s3';
import type { S3Settings } from './config';

export function createS3Client(settings: S3Settings): S3Client {
  return new S3Client({
    region: settings.region,
    endpoint: settings.endpoint || undefined,
    forcePathStyle: settings.forcePathStyle,
    credentials: settings.credentials,
    // S3-compatible servers may not know the newer checksum headers.
    requestChecksumCalculation: settings.endpoint ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED',
    responseChecksumValidation: settings.endpoint ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED',
  });
}
