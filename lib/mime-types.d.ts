// mime-types ships no types; only the function Cordon calls (an asset's Content-Type) is declared.
declare module 'mime-types' {
  export function lookup(path: string): string | false;
  const mime: { lookup: typeof lookup };
  export default mime;
}
