/**
 * The Fetch API for the isolate, one file per class (re-exported here): the subset of the Fetch
 * standard a Workers fetch handler uses. Hand-written glue: no maintained pure-JS Fetch
 * implementation runs without Node or a DOM.
 */
// This file is a snapshot module (SNAPSHOT_MODULES in ../abi.ts): code in the init half imports these
// classes from here, never from the files below, or it would get copies of its own, apart from the
// snapshot's (and from what the worker's globals are).
export { Headers, type HeadersInit } from './headers.ts';
export { Blob, File } from './blob.ts';
export { FormData } from './form-data.ts';
export { Body, handOver, type BodyInit } from './body.ts';
export { Request, type RequestInit } from './request.ts';
export { Response, type ResponseInit } from './response.ts';
export { urlParses } from './url-parse-cache.ts';
