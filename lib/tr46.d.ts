// tr46 ships no types; only the function Cordon calls (the sandbox's URL hosts, route patterns) is declared.
declare module 'tr46' {
  export function toASCII(domainName: string, options?: Record<string, boolean>): string | null;
  const tr46: { toASCII: typeof toASCII };
  export default tr46;
}
