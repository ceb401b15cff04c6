/**
 * `node:fs` as workerd has it (from the 2025-09-15 compatibility date, or with enable_nodejs_fs_module): a
 * virtual file system in the worker's own memory, never the host's. `/bundle` holds the worker's modules,
 * read-only (the current directory, as in workerd); `/tmp` is writable and starts empty for each request
 * (workerd scopes it to the request; here to the requests in flight together: see `tmpRoot`); `/dev` has
 * null, zero, full and random. Nothing else exists: `/etc/passwd` or `/proc` are ENOENT, `..` stops at the
 * root, and a symlink's target is resolved inside this tree. Errors carry workerd's codes, messages and
 * syscalls (measured with the real workerd). What /tmp holds is isolate memory: the worker's memory limit
 * bounds it, as it does in workerd.
 *
 * Hand-written rather than memfs: memfs 4 bundles to 191 KB minified (before the Node modules it imports)
 * and implements a POSIX file system (modes, owners, permissions), not workerd's (fixed modes and times,
 * EPERM outside /tmp, its own messages and syscall names), so it would need a layer about as large as this
 * module to give workerd's answers. APIs workerd has and this module
 * does not (watch, glob, cp, opendir, statfs) are unenv's stand-ins.
 */
import { modules as bundled, requestEpoch } from 'node-internal:fs';
import { Readable, Writable } from 'node:stream';
import * as constants from 'unenv/node/internal/fs/constants';
import * as standIns from 'unenv/node/internal/fs/fs';
import * as promiseStandIns from 'unenv/node/internal/fs/promises';

// unenv's own node:fs imports node:fs/promises, which is fs-promises.ts here: its parts are taken instead.
export * from 'unenv/node/internal/fs/fs';
export * from 'unenv/node/internal/fs/classes';
export { F_OK, R_OK, W_OK, X_OK } from 'unenv/node/internal/fs/constants';
export { constants };
const { F_OK, R_OK, W_OK, X_OK } = constants;

type Bytes = Uint8Array;
interface File {
  kind: 'file';
  data: Bytes;
  size: number;
  readonly: boolean;
}
interface Dir {
  kind: 'dir';
  entries: Map<string, Node>;
  mode: number;
  readonly: boolean;
}
interface Link {
  kind: 'link';
  target: string;
}
interface Device {
  kind: 'dev';
  name: 'null' | 'zero' | 'full' | 'random';
}
type Node = File | Dir | Link | Device;

const S_IFREG = 0o100000;
const S_IFDIR = 0o40000;
const S_IFCHR = 0o20000;
const S_IFLNK = 0o120000;

/** workerd's error: its code, message and syscall; the path only where workerd gives it. */
function fail(code: string, message: string, syscall: string, path?: string, errno?: number): never {
  const e = new Error(path === undefined ? message : `${message}, ${syscall} '${path}'`) as Error & Record<string, unknown>;
  e.code = code;
  e.syscall = syscall;
  if (path !== undefined) e.path = path;
  if (errno !== undefined) e.errno = errno;
  throw e;
}
const enoent = (syscall: string, path: string): never =>
  fail('ENOENT', 'no such file or directory', syscall, path, ['stat', 'lstat', 'access'].includes(syscall) ? -2 : undefined);
const eperm = (syscall: string): never => fail('EPERM', 'operation not permitted', syscall);
const base = (p: string) => p.slice(p.lastIndexOf('/') + 1);

const dir = (entries: [string, Node][], readonly = true, mode = 0o444): Dir => ({ kind: 'dir', entries: new Map(entries), mode, readonly });
const fromBase64 = (s: string): Bytes => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));

/** The worker's modules, decoded on first use (most workers never read them). */
let bundleDir: Dir | undefined;
function bundleRoot(): Dir {
  bundleDir ??= dir(
    bundled.map(([name, type, content]): [string, Node] => {
      const data = type === 'data' || type === 'wasm' ? fromBase64(content) : new TextEncoder().encode(content);
      return [name, { kind: 'file', data, size: data.length, readonly: true }];
    }),
  );
  return bundleDir;
}

/**
 * /tmp, emptied when a request starts while none is in flight (the runtime bumps `requestEpoch` then):
 * one request never sees what an earlier one left. Requests in flight together share it; workerd gives
 * each its own.
 */
let tmp = dir([], false, 0o666);
let epoch = -1;
function tmpRoot(): Dir {
  const now = requestEpoch();
  if (now !== epoch) {
    epoch = now;
    tmp = dir([], false, 0o666);
  }
  return tmp;
}

const devices = dir((['null', 'zero', 'full', 'random'] as const).map((name): [string, Node] => [name, { kind: 'dev', name }]));

function root(): Dir {
  return dir([
    ['bundle', bundleRoot()],
    ['tmp', tmpRoot()],
    ['dev', devices],
  ]);
}

/** A path argument as workerd takes it (string, Buffer or file: URL), made absolute from /bundle. */
function pathOf(p: unknown): string {
  let s: string;
  if (typeof p === 'string') s = p;
  else if (p instanceof Uint8Array) s = new TextDecoder().decode(p);
  else if (p instanceof URL) {
    if (p.protocol !== 'file:') throw Object.assign(new TypeError('The URL must be of scheme file'), { code: 'ERR_INVALID_URL_SCHEME' });
    s = decodeURIComponent(p.pathname);
  } else {
    const received =
      p === null || p === undefined
        ? String(p)
        : typeof p === 'object'
          ? `an instance of ${(p as object).constructor?.name ?? 'Object'}`
          : `type ${typeof p} (${String(p)})`;
    throw Object.assign(new TypeError(`The "path" argument must be of type string or an instance of Buffer or URL. Received ${received}`), {
      code: 'ERR_INVALID_ARG_TYPE',
    });
  }
  return normalize(s.startsWith('/') ? s : `/bundle/${s}`);
}

/** `.` and `..` folded away; `..` at the root stays at the root. */
function normalize(p: string): string {
  const parts: string[] = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') parts.pop();
    else parts.push(seg);
  }
  return `/${parts.join('/')}`;
}

const MAX_LINKS = 40;

/** The node at `path` (following symlinks, the last one too unless `noFollow`), or undefined; ELOOP past 40 links. */
function lookup(path: string, syscall: string, noFollow = false, depth = 0): Node | undefined {
  let node: Node = root();
  const parts = path.split('/').filter(Boolean);
  for (let i = 0; i < parts.length; i++) {
    if (node.kind !== 'dir') return undefined;
    const next = node.entries.get(parts[i]!);
    if (!next) return undefined;
    if (next.kind === 'link' && (i < parts.length - 1 || !noFollow)) {
      if (depth >= MAX_LINKS) fail('ELOOP', 'symlink depth exceeded', syscall);
      const rest = parts.slice(i + 1).join('/');
      return lookup(normalize(`/${next.target}/${rest}`), syscall, noFollow, depth + 1);
    }
    node = next;
  }
  return node;
}

/** The writable directory that holds `path`, and the entry's name; EPERM outside /tmp, ENOENT without a parent. */
function parentOf(path: string, syscall: string, missing: (p: string) => never = (p) => enoent(syscall, p)): [Dir, string] {
  const slash = path.lastIndexOf('/');
  const parent = lookup(path.slice(0, slash) || '/', syscall);
  if (!parent) return missing(path);
  if (parent.kind !== 'dir') return fail('ENOTDIR', 'not a directory', syscall);
  if (parent.readonly) return eperm(syscall);
  return [parent, path.slice(slash + 1)];
}

export class Stats {
  dev = 0;
  ino = 0;
  mode: number;
  nlink = 1;
  uid = 0;
  gid = 0;
  rdev = 0;
  size: number;
  blksize = 0;
  blocks = 0;
  atimeMs = 0;
  mtimeMs = 0;
  ctimeMs = 0;
  birthtimeMs = 0;
  atimeNs = 0n;
  mtimeNs = 0n;
  ctimeNs = 0n;
  birthtimeNs = 0n;
  atime = new Date(0);
  mtime = new Date(0);
  ctime = new Date(0);
  birthtime = new Date(0);
  constructor(node: Node) {
    this.mode =
      node.kind === 'dir'
        ? S_IFDIR | node.mode
        : node.kind === 'file'
          ? S_IFREG | (node.readonly ? 0o444 : 0o666)
          : node.kind === 'dev'
            ? S_IFCHR | 0o666
            : S_IFLNK | 0o666;
    this.size = node.kind === 'file' ? node.size : 0;
  }
  isFile(): boolean {
    return (this.mode & 0o170000) === S_IFREG;
  }
  isDirectory(): boolean {
    return (this.mode & 0o170000) === S_IFDIR;
  }
  isCharacterDevice(): boolean {
    return (this.mode & 0o170000) === S_IFCHR;
  }
  isSymbolicLink(): boolean {
    return (this.mode & 0o170000) === S_IFLNK;
  }
  isBlockDevice(): boolean {
    return false;
  }
  isFIFO(): boolean {
    return false;
  }
  isSocket(): boolean {
    return false;
  }
}

export class Dirent {
  #node: Node;
  name: string;
  parentPath: string;
  constructor(name: string, parentPath: string, node: Node) {
    this.name = name;
    this.parentPath = parentPath;
    this.#node = node;
  }
  isFile(): boolean {
    return this.#node.kind === 'file';
  }
  isDirectory(): boolean {
    return this.#node.kind === 'dir';
  }
  isSymbolicLink(): boolean {
    return this.#node.kind === 'link';
  }
  isCharacterDevice(): boolean {
    return this.#node.kind === 'dev';
  }
  isBlockDevice(): boolean {
    return false;
  }
  isFIFO(): boolean {
    return false;
  }
  isSocket(): boolean {
    return false;
  }
}

type Encoding = BufferEncoding | undefined;
const encodingOf = (o: unknown): Encoding =>
  typeof o === 'string' ? (o as BufferEncoding) : ((o as { encoding?: BufferEncoding } | undefined)?.encoding ?? undefined);
const bytesOf = (data: unknown, enc: Encoding): Bytes =>
  typeof data === 'string'
    ? Buffer.from(data, enc ?? 'utf8')
    : ArrayBuffer.isView(data)
      ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
      : Buffer.from(String(data));

function readNode(node: Node): Bytes {
  return node.kind === 'file' ? node.data.subarray(0, node.size) : new Uint8Array(0);
}

/** Writes `bytes` into `file` at `at`, growing it (in the isolate's memory, which its limit bounds). */
function writeInto(file: File, bytes: Bytes, at: number): number {
  const end = at + bytes.length;
  if (end > file.data.length) {
    const grown = new Uint8Array(Math.max(end, Math.min(file.data.length * 2, end + 64 * 1024 * 1024)));
    grown.set(file.data.subarray(0, file.size));
    file.data = grown;
  }
  file.data.set(bytes, at);
  file.size = Math.max(file.size, end);
  return bytes.length;
}

function writeNode(node: Node, bytes: Bytes, at: number, syscall: string): number {
  if (node.kind === 'dev') {
    if (node.name === 'full' || node.name === 'random') eperm(syscall);
    return bytes.length;
  }
  if (node.kind !== 'file') return fail('EISDIR', 'illegal operation on a directory', syscall);
  if (node.readonly) eperm(syscall);
  return writeInto(node, bytes, at);
}

export function existsSync(path: unknown): boolean {
  try {
    return lookup(pathOf(path), 'exists') !== undefined;
  } catch {
    return false;
  }
}

function statWith(syscall: 'stat' | 'lstat', path: unknown, options?: { throwIfNoEntry?: boolean }): Stats | undefined {
  const p = pathOf(path);
  const node = lookup(p, syscall, syscall === 'lstat');
  if (node) return new Stats(node);
  if (options?.throwIfNoEntry === false) return undefined;
  return enoent(syscall, p);
}
export const statSync = (path: unknown, options?: { throwIfNoEntry?: boolean }) => statWith('stat', path, options);
export const lstatSync = (path: unknown, options?: { throwIfNoEntry?: boolean }) => statWith('lstat', path, options);

export function accessSync(path: unknown, mode = 0): void {
  const p = pathOf(path);
  const node = lookup(p, 'access');
  if (!node || (mode & 2 && (node.kind === 'dir' || node.kind === 'file') && node.readonly)) enoent('access', p);
}

export function readFileSync(path: unknown, options?: unknown): string | Buffer {
  if (typeof path === 'number') return encoded(readFd(path, 'fread'), encodingOf(options));
  const p = pathOf(path);
  const node = lookup(p, 'readAll');
  if (!node) return enoent('readAll', p);
  if (node.kind === 'dir') return fail('EISDIR', 'illegal operation on a directory', 'readAll');
  return encoded(readNode(node), encodingOf(options));
}
const encoded = (bytes: Bytes, enc: Encoding): string | Buffer => (enc ? Buffer.from(bytes).toString(enc) : Buffer.from(bytes));

/** Writes a whole file; workerd returns the bytes written. */
function writeAll(path: unknown, data: unknown, options: unknown, append: boolean): number {
  const p = pathOf(path);
  const bytes = bytesOf(data, encodingOf(options));
  const node = lookup(p, 'writeAll');
  if (node) {
    if (node.kind === 'file' && !node.readonly && !append) node.size = 0;
    return writeNode(node, bytes, node.kind === 'file' ? node.size : 0, 'writeAll');
  }
  const [parent, name] = parentOf(p, 'writeAll');
  const file: File = { kind: 'file', data: new Uint8Array(0), size: 0, readonly: false };
  writeInto(file, bytes, 0);
  parent.entries.set(name, file);
  return bytes.length;
}
export const writeFileSync = (path: unknown, data: unknown, options?: unknown): number => writeAll(path, data, options, false);
export const appendFileSync = (path: unknown, data: unknown, options?: unknown): number => writeAll(path, data, options, true);

/** workerd has no file watching. */
export function watch(): never {
  throw Object.assign(new Error('The requested operation is unsupported'), { code: 'ERR_UNSUPPORTED_OPERATION' });
}
export const watchFile = watch;
export const unwatchFile = watch;

export function readdirSync(path: unknown, options?: unknown): (string | Dirent)[] {
  const p = pathOf(path);
  const node = lookup(p, 'readdir');
  if (!node) return enoent('readdir', p);
  if (node.kind !== 'dir') return fail('ENOTDIR', 'not a directory', 'readdir', p);
  const o = typeof options === 'object' && options !== null ? (options as { withFileTypes?: boolean; recursive?: boolean }) : {};
  const out: (string | Dirent)[] = [];
  const walk = (d: Dir, at: string, prefix: string) => {
    for (const [name, child] of d.entries) {
      out.push(o.withFileTypes ? new Dirent(name, at, child) : `${prefix}${name}`);
      if (o.recursive && child.kind === 'dir') walk(child, `${at === '/' ? '' : at}/${name}`, `${prefix}${name}/`);
    }
  };
  // workerd names a recursive listing's entries from the root (readdir('/tmp') gives 'tmp/a').
  walk(node, p, o.recursive ? (p === '/' ? '' : `${p.slice(1)}/`) : '');
  return out;
}

export function mkdirSync(path: unknown, options?: unknown): string | undefined {
  const p = pathOf(path);
  const recursive = typeof options === 'object' && options !== null && (options as { recursive?: boolean }).recursive === true;
  const existing = lookup(p, 'mkdir');
  if (existing) {
    if (existing.kind !== 'dir') fail('EEXIST', 'file already exists', 'mkdir');
    return undefined;
  }
  let first: string | undefined;
  const make = (q: string): void => {
    const [parent, name] = parentOf(q, 'mkdir', (missing) => {
      if (!recursive) return fail('ENOENT', 'no such file or directory', 'mkdir', base(missing));
      make(q.slice(0, q.lastIndexOf('/')));
      return parentOf(q, 'mkdir') as never;
    });
    const d = dir([], false, 0o666);
    parent.entries.set(name, d);
    first ??= q;
  };
  make(p);
  return recursive ? first : undefined;
}

function remove(path: unknown, syscall: 'rm' | 'unlink', options: { recursive?: boolean; force?: boolean } = {}): void {
  const p = pathOf(path);
  const node = lookup(p, syscall, true);
  if (!node) {
    return;
  }
  const [parent, name] = parentOf(p, syscall);
  if (node.kind === 'dir') {
    if (syscall === 'unlink') fail('EISDIR', 'Cannot unlink a directory', syscall);
    if (node.entries.size && !options.recursive) fail('ENOTEMPTY', 'directory not empty', syscall, base(p));
  }
  parent.entries.delete(name);
}
export const rmSync = (path: unknown, options?: { recursive?: boolean; force?: boolean }): void => remove(path, 'rm', options);
export function unlinkSync(path: unknown): void {
  const p = pathOf(path);
  if (!lookup(p, 'unlink', true)) throw Object.assign(new Error('File not found'), { code: 'ENOENT', syscall: 'unlink', path: base(p) });
  remove(p, 'unlink');
}
export function rmdirSync(path: unknown, options?: { recursive?: boolean }): void {
  const p = pathOf(path);
  const node = lookup(p, 'rm', true);
  if (!node) fail('ENOENT', 'no such file or directory', 'rm', base(p));
  if (node!.kind !== 'dir') fail('ENOTDIR', 'not a directory', 'rm');
  remove(p, 'rm', options);
}

export function renameSync(from: unknown, to: unknown): void {
  const a = pathOf(from);
  const b = pathOf(to);
  const node = lookup(a, 'rename', true);
  if (!node) return enoent('rename', a);
  const [src, srcName] = parentOf(a, 'rename');
  const [dst, dstName] = parentOf(b, 'rename');
  src.entries.delete(srcName);
  dst.entries.set(dstName, node);
}

export function copyFileSync(from: unknown, to: unknown): void {
  const a = pathOf(from);
  const node = lookup(a, 'copy');
  if (!node) return enoent('copy', a);
  writeFileSync(to, readNode(node).slice());
}

export function symlinkSync(target: unknown, path: unknown): void {
  const [parent, name] = parentOf(pathOf(path), 'symlink');
  parent.entries.set(name, { kind: 'link', target: typeof target === 'string' ? target : String(target) });
}
export function linkSync(existing: unknown, path: unknown): void {
  const a = pathOf(existing);
  const node = lookup(a, 'link');
  if (!node) return enoent('link', a);
  if (node.kind === 'dir') return fail('EPERM', 'Cannot hardlink to a directory', 'link');
  const [parent, name] = parentOf(pathOf(path), 'link');
  parent.entries.set(name, node);
}
export function readlinkSync(path: unknown): string {
  const p = pathOf(path);
  const node = lookup(p, 'readlink', true);
  if (!node) return enoent('readlink', p);
  if (node.kind !== 'link') return fail('EINVAL', 'invalid argument', 'readlink');
  return node.target;
}
export function realpathSync(path: unknown): string {
  let p = pathOf(path);
  for (let i = 0; i <= MAX_LINKS; i++) {
    const node = lookup(p, 'realpath', true);
    if (!node) return enoent('realpath', p);
    if (node.kind !== 'link') return p;
    p = normalize(`/${node.target}`);
  }
  return fail('ELOOP', 'symlink depth exceeded', 'realpath');
}

export function truncateSync(path: unknown, len = 0): void {
  const p = pathOf(path);
  const node = lookup(p, 'truncate');
  if (!node) return enoent('truncate', p);
  truncateNode(node, len, 'truncate');
}
/** workerd's bound on a length: 0 to 2^32 − 1. */
function checkLength(len: unknown): number {
  if (typeof len !== 'number' || !Number.isInteger(len) || len < 0 || len >= 2 ** 32) {
    const shown = typeof len === 'number' && Number.isInteger(len) ? String(len).replace(/\B(?=(\d{3})+$)/g, '_') : String(len);
    throw Object.assign(new RangeError(`The value of "len" is out of range. It must be >= 0 && < 4294967296. Received ${shown}`), { code: 'ERR_OUT_OF_RANGE' });
  }
  return len;
}
function truncateNode(node: Node, length: unknown, syscall: string): void {
  const len = checkLength(length);
  if (node.kind !== 'file') return void (node.kind === 'dir' && fail('EISDIR', 'illegal operation on a directory', syscall));
  if (node.readonly) eperm(syscall);
  if (len > node.size) writeInto(node, new Uint8Array(len - node.size), node.size);
  node.size = len;
}

let tempCount = 0;
export function mkdtempSync(prefix: unknown): string {
  const p = `${String(prefix)}${tempCount++}`;
  mkdirSync(p);
  return pathOf(p);
}

// Owners, modes and times are fixed in workerd's file system: these change nothing.
export const chmodSync = (path: unknown): void => void statSync(path);
export const chownSync = chmodSync;
export const lchownSync = chmodSync;
export const utimesSync = chmodSync;
export const lutimesSync = chmodSync;

/** Open files: numbers go on rising for the isolate's life, as in workerd. */
interface Open {
  node: Node;
  readable: boolean;
  writable: boolean;
  append: boolean;
  position: number;
}
const fds = new Map<number, Open>();
let nextFd = 3;
const badFd = (syscall: string): never => fail('EBADF', 'bad file descriptor', syscall);

export function openSync(path: unknown, flags: string | number = 'r'): number {
  const p = pathOf(path);
  const f = typeof flags === 'number' ? ((flags & 3) === 0 ? 'r' : (flags & 3) === 1 ? 'w' : 'r+') : flags.replace('s', '');
  const writes = f !== 'r';
  let node = lookup(p, 'open');
  if (node && f.includes('x')) fail('EEXIST', 'file already exists', 'open');
  if (!node) {
    if (!writes || f === 'r+') return enoent('open', p);
    const [parent, name] = parentOf(p, 'open');
    node = { kind: 'file', data: new Uint8Array(0), size: 0, readonly: false };
    parent.entries.set(name, node);
  }
  if (writes && (node.kind === 'file' || node.kind === 'dir') && node.readonly) eperm('open');
  if (f.startsWith('w') && node.kind === 'file') node.size = 0;
  const fd = nextFd++;
  fds.set(fd, { node, readable: f.startsWith('r') || f.includes('+'), writable: writes, append: f.startsWith('a'), position: 0 });
  return fd;
}
export function closeSync(fd: number): void {
  fds.delete(fd);
}

function readFd(fd: number, syscall: string): Bytes {
  const o = fds.get(fd);
  if (!o || !o.readable) return badFd(syscall);
  return readNode(o.node);
}

export function readSync(fd: number, buffer: ArrayBufferView, offsetOrOptions?: unknown, length?: number, position?: number | null): number {
  const o = fds.get(fd);
  if (!o || !o.readable) return badFd('read');
  const target = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  const opts =
    typeof offsetOrOptions === 'object' && offsetOrOptions !== null
      ? (offsetOrOptions as { offset?: number; length?: number; position?: number | null })
      : undefined;
  const offset = opts?.offset ?? (offsetOrOptions as number | undefined) ?? 0;
  const len = Math.min(opts?.length ?? length ?? target.length - offset, target.length - offset);
  const pos = opts?.position ?? position;
  const node = o.node;
  if (node.kind === 'dev') {
    if (node.name === 'null') return 0;
    const out = target.subarray(offset, offset + len);
    if (node.name === 'random') for (let i = 0; i < out.length; i += 65536) crypto.getRandomValues(out.subarray(i, i + 65536));
    else out.fill(0);
    return len;
  }
  if (node.kind !== 'file') return fail('EISDIR', 'illegal operation on a directory', 'read');
  const at = typeof pos === 'number' && pos >= 0 ? pos : o.position;
  const chunk = node.data.subarray(Math.min(at, node.size), Math.min(at + len, node.size));
  target.set(chunk, offset);
  if (!(typeof pos === 'number' && pos >= 0)) o.position += chunk.length;
  return chunk.length;
}

export function writeSync(fd: number, data: unknown, offsetOrPosition?: unknown, lengthOrEncoding?: unknown, position?: number | null): number {
  const o = fds.get(fd);
  if (!o || !o.writable) return badFd('write');
  let bytes: Bytes;
  let pos: unknown;
  if (typeof data === 'string') {
    bytes = bytesOf(data, typeof lengthOrEncoding === 'string' ? (lengthOrEncoding as BufferEncoding) : undefined);
    pos = offsetOrPosition;
  } else {
    const all = bytesOf(data, undefined);
    const offset = typeof offsetOrPosition === 'number' ? offsetOrPosition : 0;
    bytes = all.subarray(offset, typeof lengthOrEncoding === 'number' ? offset + lengthOrEncoding : all.length);
    pos = position;
  }
  const explicit = typeof pos === 'number' && pos >= 0;
  const at = o.append && o.node.kind === 'file' ? o.node.size : explicit ? (pos as number) : o.position;
  const n = writeNode(o.node, bytes, at, 'write');
  if (!explicit) o.position = at + n;
  return n;
}

export function fstatSync(fd: number): Stats {
  const o = fds.get(fd);
  return o ? new Stats(o.node) : badFd('fstat');
}
export function ftruncateSync(fd: number, len = 0): void {
  const o = fds.get(fd);
  if (!o || !o.writable) return badFd('ftruncate');
  truncateNode(o.node, len, 'ftruncate');
}
export const fsyncSync = (fd: number): void => void fstatSync(fd);
export const fdatasyncSync = fsyncSync;

/** A synchronous call as Node's callback API: the callback runs after the caller's turn, with (err, result). */
function callback<A extends unknown[], R>(fn: (...args: A) => R) {
  return (...args: [...A, (err: Error | null, result?: R) => void]): void => {
    const cb = args.pop();
    if (typeof cb !== 'function')
      throw Object.assign(new TypeError(`The "cb" argument must be of type function. Received ${typeof cb}`), { code: 'ERR_INVALID_ARG_TYPE' });
    let result: R;
    try {
      result = fn(...(args as unknown as A));
    } catch (e) {
      queueMicrotask(() => (cb as (e: Error) => void)(e as Error));
      return;
    }
    queueMicrotask(() => (cb as (e: null, r: R) => void)(null, result));
  };
}
const promised =
  <A extends unknown[], R>(fn: (...args: A) => R) =>
  async (...args: A): Promise<R> =>
    fn(...args);

export const stat = callback(statSync);
export const lstat = callback(lstatSync);
export const access = callback(accessSync);
export const readFile = callback(readFileSync);
export const writeFile = callback(writeFileSync);
export const appendFile = callback(appendFileSync);
export const readdir = callback(readdirSync);
export const mkdir = callback(mkdirSync);
export const rm = callback(rmSync);
export const rmdir = callback(rmdirSync);
export const unlink = callback(unlinkSync);
export const rename = callback(renameSync);
export const copyFile = callback(copyFileSync);
export const symlink = callback(symlinkSync);
export const link = callback(linkSync);
export const readlink = callback(readlinkSync);
export const realpath = callback(realpathSync);
export const truncate = callback(truncateSync);
export const mkdtemp = callback(mkdtempSync);
export const chmod = callback(chmodSync);
export const chown = callback(chownSync);
export const lchown = callback(lchownSync);
export const utimes = callback(utimesSync);
export const lutimes = callback(lutimesSync);
export const open = callback(openSync);
export const close = callback(closeSync);
export const fstat = callback(fstatSync);
export const ftruncate = callback(ftruncateSync);
export const fsync = callback(fsyncSync);
export const fdatasync = callback(fdatasyncSync);
export function read(fd: number, buffer: ArrayBufferView, ...rest: unknown[]): void {
  const cb = rest.pop() as (e: Error | null, n?: number, b?: ArrayBufferView) => void;
  callback((...a: unknown[]) => readSync(fd, buffer, ...(a as [])))(...rest, (e: Error | null, n?: number) => (e ? cb(e) : cb(null, n, buffer)));
}
export function write(fd: number, data: unknown, ...rest: unknown[]): void {
  const cb = rest.pop() as (e: Error | null, n?: number, d?: unknown) => void;
  callback((...a: unknown[]) => writeSync(fd, data, ...(a as [])))(...rest, (e: Error | null, n?: number) => (e ? cb(e) : cb(null, n, data)));
}
export function exists(path: unknown, cb: (exists: boolean) => void): void {
  const found = existsSync(path);
  queueMicrotask(() => cb(found));
}

/** `fs/promises`' handle on an open file. */
class FileHandle {
  readonly fd: number;
  constructor(fd: number) {
    this.fd = fd;
  }
  readFile = async (options?: unknown) => readFileSync(this.fd, options);
  writeFile = async (data: unknown, options?: unknown) => void writeSync(this.fd, bytesOf(data, encodingOf(options)));
  read = async (buffer: ArrayBufferView, offset?: number, length?: number, position?: number | null) => ({
    bytesRead: readSync(this.fd, buffer, offset, length, position),
    buffer,
  });
  write = async (data: unknown, ...rest: unknown[]) => ({ bytesWritten: writeSync(this.fd, data, ...(rest as [])), buffer: data });
  stat = async () => fstatSync(this.fd);
  truncate = async (len?: number) => ftruncateSync(this.fd, len);
  sync = async () => fsyncSync(this.fd);
  close = async () => closeSync(this.fd);
}

export const promises = {
  ...promiseStandIns,
  constants,
  FileHandle,
  access: promised(accessSync),
  stat: promised(statSync),
  lstat: promised(lstatSync),
  readFile: promised(readFileSync),
  writeFile: promised(writeFileSync),
  appendFile: promised(appendFileSync),
  readdir: promised(readdirSync),
  mkdir: promised(mkdirSync),
  rm: promised(rmSync),
  rmdir: promised(rmdirSync),
  unlink: promised(unlinkSync),
  rename: promised(renameSync),
  copyFile: promised(copyFileSync),
  symlink: promised(symlinkSync),
  link: promised(linkSync),
  readlink: promised(readlinkSync),
  realpath: promised(realpathSync),
  truncate: promised(truncateSync),
  mkdtemp: promised(mkdtempSync),
  chmod: promised(chmodSync),
  chown: promised(chownSync),
  lchown: promised(lchownSync),
  utimes: promised(utimesSync),
  lutimes: promised(lutimesSync),
  open: async (path: unknown, flags?: string | number) => new FileHandle(openSync(path, flags)),
  watch: async () => watch(),
};

/** A file read as one stream (its bytes from `start` to `end`, inclusive, as Node counts them). */
export function createReadStream(path: unknown, options?: { start?: number; end?: number; encoding?: BufferEncoding } | BufferEncoding): Readable {
  const o = typeof options === 'string' ? { encoding: options } : (options ?? {});
  let done = false;
  return new Readable({
    encoding: o.encoding,
    read() {
      if (done) return;
      done = true;
      try {
        const all = readFileSync(path) as Buffer;
        this.push(all.subarray(o.start ?? 0, o.end === undefined ? undefined : o.end + 1));
        this.push(null);
      } catch (e) {
        this.destroy(e as Error);
      }
    },
  });
}

/** A stream writing a file opened (truncated, unless `flags` say otherwise) when it is made. */
export function createWriteStream(path: unknown, options?: { flags?: string; encoding?: BufferEncoding } | BufferEncoding): Writable {
  const o = typeof options === 'string' ? { encoding: options } : (options ?? {});
  const fd = openSync(path, o.flags ?? 'w');
  return new Writable({
    write(chunk: unknown, encoding: BufferEncoding, done: (e?: Error | null) => void) {
      try {
        writeSync(fd, bytesOf(chunk, encoding));
        done();
      } catch (e) {
        done(e as Error);
      }
    },
    final(done: (e?: Error | null) => void) {
      closeSync(fd);
      done();
    },
  });
}

export default {
  ...standIns,
  constants,
  F_OK,
  R_OK,
  W_OK,
  X_OK,
  Stats,
  Dirent,
  promises,
  watch,
  watchFile,
  unwatchFile,
  existsSync,
  statSync,
  lstatSync,
  accessSync,
  readFileSync,
  writeFileSync,
  appendFileSync,
  readdirSync,
  mkdirSync,
  rmSync,
  rmdirSync,
  unlinkSync,
  renameSync,
  copyFileSync,
  symlinkSync,
  linkSync,
  readlinkSync,
  realpathSync,
  truncateSync,
  mkdtempSync,
  chmodSync,
  chownSync,
  lchownSync,
  utimesSync,
  lutimesSync,
  openSync,
  closeSync,
  readSync,
  writeSync,
  fstatSync,
  ftruncateSync,
  fsyncSync,
  fdatasyncSync,
  stat,
  lstat,
  access,
  readFile,
  writeFile,
  appendFile,
  readdir,
  mkdir,
  rm,
  rmdir,
  unlink,
  rename,
  copyFile,
  symlink,
  link,
  readlink,
  realpath,
  truncate,
  mkdtemp,
  chmod,
  chown,
  lchown,
  utimes,
  lutimes,
  open,
  close,
  fstat,
  ftruncate,
  fsync,
  fdatasync,
  read,
  write,
  exists,
  createReadStream,
  createWriteStream,
};
