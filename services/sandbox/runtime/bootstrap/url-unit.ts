/**
 * whatwg-url's URL and URLSearchParams and its parser, a lazy unit (units.ts): loaded by an isolate's
 * first URL (url.ts). A request whose URL is already its own href never parses it (canonical-href.ts),
 * so a worker that never makes a URL never needs them, and they were ~230 KB of every isolate's heap.
 */
export { URL, URLSearchParams, parseURL, serializeURL } from 'whatwg-url';
