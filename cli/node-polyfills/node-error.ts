/** A Node-style error: the class Node throws, with its `code`. */
export const nodeError = (Ctor: ErrorConstructor, message: string, code: string) => Object.assign(new Ctor(message), { code });

/** What ERR_INVALID_ARG_TYPE says it received, worded as Node and workerd word it. */
export function describeReceived(value: unknown): string {
  if (value === undefined || value === null) return String(value);
  if (typeof value === 'function') {
    const name = (value as { name?: string }).name;
    return name ? `function ${name}` : 'type function ([Function (anonymous)])';
  }
  if (typeof value === 'object') return `an instance of ${(value as object).constructor?.name ?? 'Object'}`;
  return `type ${typeof value} (${typeof value === 'string' ? `'${value.length > 25 ? `${value.slice(0, 25)}...` : value}'` : String(value)})`;
}
