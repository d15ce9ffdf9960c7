// The manifest of one flush: which records (all of the partition's records
// with offsets firstOffset..lastOffset) went into which objects. Written with
// a conditional create before any data object, so that the first writer fixes
// the range and every later writer (a replay, a zombie) produces exactly the
// same objects with exactly the same content.
//
// The manifests of both formats live in one place (layout.ts): a manifest also
// fixes the format its objects are written in, and a writer configured for the
// other format that replays the flush writes it in the manifest's format.
import type { ArchiveFormat } from './layout';

export interface ManifestObject {
  key: string;
  firstOffset: number;
  records: number;
  bytes: number;
}

export interface Manifest {
  version: 1;
  topic: string;
  partition: number;
  firstOffset: number;
  lastOffset: number;
  /** The offset committed after this flush (past trailing control records). */
  nextOffset: number;
  records: number;
  /** The objects' format; absent in manifests written before Parquet existed, which are all JSON. */
  format?: ArchiveFormat;
  objects: ManifestObject[];
  writer: { host: string; pid: number; memberId: string };
  createdAt: string;
}

export function encodeManifest(m: Manifest): Buffer {
  return Buffer.from(`${JSON.stringify(m, null, 1)}\n`);
}

/** Reads a manifest; throws on anything that is not one. */
export function decodeManifest(text: string, key: string): Manifest {
  const m = JSON.parse(text) as Partial<Manifest>;
  const ok =
    m &&
    m.version === 1 &&
    typeof m.topic === 'string' &&
    Number.isSafeInteger(m.partition) &&
    Number.isSafeInteger(m.firstOffset) &&
    Number.isSafeInteger(m.lastOffset) &&
    Number.isSafeInteger(m.nextOffset) &&
    Array.isArray(m.objects) &&
    (m.format === undefined || m.format === 'json' || m.format === 'parquet');
  if (!ok) throw new Error(`${key}: not a flush manifest`);
  return m as Manifest;
}

/** The format a manifest's objects are written in. */
export function manifestFormat(m: Pick<Manifest, 'format'>): ArchiveFormat {
  return m.format ?? 'json';
}

export function sameRange(a: { firstOffset: number; lastOffset: number }, b: { firstOffset: number; lastOffset: number }): boolean {
  return a.firstOffset === b.firstOffset && a.lastOffset === b.lastOffset;
}
