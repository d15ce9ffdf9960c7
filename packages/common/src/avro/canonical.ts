// Avro "Parsing Canonical Form" (Avro specification, section "Parsing Canonical
// Form for Schemas"): the schema stripped of everything that does not affect
// how bytes are read, so two schemas that read the same bytes print the same.
// Its CRC-64-AVRO is the fingerprint used by single-object encoding.

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const PRIMITIVES = new Set(['null', 'boolean', 'int', 'long', 'float', 'double', 'bytes', 'string']);
const NAMED = new Set(['record', 'error', 'enum', 'fixed']);
// [ORDER]: the only attributes kept, in this order.
const KEPT_ATTRIBUTES = ['name', 'type', 'fields', 'symbols', 'items', 'values', 'size'] as const;

/** Returns the Parsing Canonical Form of a schema given as JSON text or value. */
export function canonicalForm(schema: string | Json): string {
  const value = typeof schema === 'string' ? (JSON.parse(schema) as Json) : schema;
  return write(value, '', new Set());
}

function fullName(name: string, namespace: string): string {
  // [FULLNAMES]: a dotted name is already full; otherwise prefix the namespace.
  return name.includes('.') || namespace === '' ? name : `${namespace}.${name}`;
}

function write(schema: Json, namespace: string, defined: Set<string>): string {
  if (typeof schema === 'string') {
    return JSON.stringify(PRIMITIVES.has(schema) ? schema : fullName(schema, namespace));
  }
  if (Array.isArray(schema)) {
    return `[${schema.map((branch) => write(branch, namespace, defined)).join(',')}]`;
  }
  if (schema === null || typeof schema !== 'object') {
    throw new TypeError(`not an Avro schema: ${JSON.stringify(schema)}`);
  }
  const type = schema.type;
  if (typeof type !== 'string') {
    // {"type": {...}} nests a schema: its canonical form is the inner one.
    return write(type as Json, namespace, defined);
  }
  // [PRIMITIVES]: {"type":"int"} is written "int".
  if (PRIMITIVES.has(type)) return JSON.stringify(type);

  let innerNamespace = namespace;
  const out: string[] = [];
  if (NAMED.has(type)) {
    const name = fullName(String(schema.name), typeof schema.namespace === 'string' ? schema.namespace : namespace);
    // A named type already written is referred to by its full name.
    if (defined.has(name)) return JSON.stringify(name);
    defined.add(name);
    innerNamespace = name.includes('.') ? name.slice(0, name.lastIndexOf('.')) : '';
  }
  for (const key of KEPT_ATTRIBUTES) {
    if (!(key in schema)) continue;
    const value = schema[key] as Json;
    switch (key) {
      case 'name':
        out.push(`"name":${JSON.stringify(fullName(String(value), typeof schema.namespace === 'string' ? schema.namespace : namespace))}`);
        break;
      case 'type':
        out.push(`"type":${JSON.stringify(type)}`);
        break;
      case 'fields': {
        const fields = (value as Json[]).map((field) => {
          const f = field as { [key: string]: Json };
          return `{"name":${JSON.stringify(f.name)},"type":${write(f.type as Json, innerNamespace, defined)}}`;
        });
        out.push(`"fields":[${fields.join(',')}]`);
        break;
      }
      case 'symbols':
        out.push(`"symbols":${JSON.stringify(value)}`);
        break;
      case 'items':
      case 'values':
        out.push(`"${key}":${write(value, innerNamespace, defined)}`);
        break;
      case 'size':
        // [INTEGERS]: no leading zeros (JSON numbers have none once parsed).
        out.push(`"size":${Number(value)}`);
        break;
    }
  }
  return `{${out.join(',')}}`;
}
