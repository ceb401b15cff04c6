/** urlpattern-polyfill, behind the URLPattern global (url-pattern.ts), a lazy unit (units.ts): loaded by an isolate's first URLPattern. */
export { URLPattern } from 'urlpattern-polyfill/urlpattern';
