// process_filter, exactly as shared/spec/netmon.md: a process matches when
// uid AND euid AND auid AND (name OR path OR prefix) match; values inside one
// list are OR'd; an empty list is not checked (so with every list empty, every
// process matches). deny_list: false keeps matching processes, true drops them.
// No process_filter section (null) keeps everything.
import type { ProcessFilter } from '@netmon/common';

/** The enriched process fields the filter looks at. */
export interface FilterSubject {
  uid: number;
  euid: number;
  auid: number;
  filename: string;
  binary_path: string;
}

/** true: the event goes out. */
export type ProcessPredicate = (p: FilterSubject) => boolean;

const KEEP_ALL: ProcessPredicate = () => true;

export function compileFilter(filter: ProcessFilter | null): ProcessPredicate {
  if (filter === null) return KEEP_ALL;
  const uid = filter.uid.length > 0 ? new Set(filter.uid) : null;
  const euid = filter.euid.length > 0 ? new Set(filter.euid) : null;
  const auid = filter.auid.length > 0 ? new Set(filter.auid) : null;
  const names = filter.binary.name.length > 0 ? new Set(filter.binary.name) : null;
  const paths = filter.binary.path.length > 0 ? new Set(filter.binary.path) : null;
  const prefixes = filter.binary.prefix.length > 0 ? [...filter.binary.prefix] : null;
  const binaryChecked = names !== null || paths !== null || prefixes !== null;
  const deny = filter.denyList;

  return (p) => {
    let match = (uid === null || uid.has(p.uid)) && (euid === null || euid.has(p.euid)) && (auid === null || auid.has(p.auid));
    if (match && binaryChecked) {
      match = names?.has(p.filename) === true || paths?.has(p.binary_path) === true || (prefixes !== null && hasPrefix(p.binary_path, prefixes));
    }
    return deny ? !match : match;
  };
}

function hasPrefix(path: string, prefixes: readonly string[]): boolean {
  for (const prefix of prefixes) if (path.startsWith(prefix)) return true;
  return false;
}
