// The manifest of one flush: which records (all of the partition's records
// with offsets firstOffset..lastOffset) went into which objects. Written with
// a conditional create before any data object, so that the first writer fixes
// the range and every later writer (a replay, a zombie) produces exactly the
// same objects with exactly the same content.

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
    Array.isArray(m.objects);
  if (!ok) throw new Error(`${key}: not a flush manifest`);
  return m as Manifest;
}

export function sameRange(a: { firstOffset: number; lastOffset: number }, b: { firstOffset: number; lastOffset: number }): boolean {
  return a.firstOffset === b.firstOffset && a.lastOffset === b.lastOffset;
}
