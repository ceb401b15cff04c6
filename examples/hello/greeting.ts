export function greeting(name: string): string {
  return `Hello, ${name}! (from a Cordon isolate)\n`;
}
