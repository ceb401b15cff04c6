/**
 * The library half of the bootstrap: pure definitions (Web API classes, events, encodings),
 * evaluated once into the start-up snapshot every isolate is created from, so a new isolate does not
 * parse and run half a megabyte of library code. Nothing here touches the host or locks anything
 * down: V8 re-creates some globals in each context made from a snapshot, so everything that must
 * hold per context runs in the init half (index.ts), which reads these modules from LIBS_GLOBAL
 * (the list is SNAPSHOT_MODULES in ../abi.ts).
 */
import './install-encoding.ts';
import * as encoding from './encoding.ts';
import * as fetchApi from './fetch-api.ts';
import * as web from './web-globals.ts';
import * as idna from './idna.ts';
import * as capnweb from './capnweb.ts';
import * as digest from './digest-stream.ts';
import * as units from './units.ts';
import * as streams from './streams.ts';
import * as url from './url.ts';
import { LIBS_GLOBAL, type SnapshotLibs } from '../abi.ts';

const libs: SnapshotLibs = { encoding, fetchApi, web, idna, capnweb, digest, units, streams, url };
units.keepLibs(libs);
Object.defineProperty(globalThis, LIBS_GLOBAL, { value: libs, configurable: true, enumerable: false, writable: false });
