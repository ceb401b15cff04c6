/** fflate's streaming codecs behind CompressionStream and DecompressionStream (compression.ts), a lazy unit (units.ts). */
export { Deflate, Gunzip, Gzip, Inflate, Unzlib, Zlib } from 'fflate';
