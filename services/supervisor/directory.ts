/**
 * A worker's private directory. Paths are relative and `/`-separated, and are parsed into a list of
 * checked names before any file is touched: `..`, `.`, empty segments, absolute paths, backslashes,
 * NUL and control characters are refused by the parser, so no spelling can name anything outside the
 * root. Every step of the walk is `lstat`ed and must be a real directory (a symlink anywhere is
 * refused), and files are opened with O_NOFOLLOW. Only the supervisor writes here and the API has no
 * way to create a link, so nothing can swap one in between the check and the use.
 */
import { constants, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { CordonError } from '../../lib/errors.ts';

/**
 * The codes that are refusals: a path the parser rejects, a link or special file, the quota. A
 * missing file or a name already taken is the worker's ordinary business, not audited.
 */
const REFUSALS = new Set(['EINVAL', 'ELOOP', 'EDQUOT']);
const STATUS: Record<string, number> = { ENOENT: 404, EEXIST: 409, EDQUOT: 507 };

export class DirectoryError extends CordonError {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message, { status: STATUS[code] ?? 400, refusal: REFUSALS.has(code) });
    this.name = 'DirectoryError';
    this.code = code;
  }
}

const MAX_PATH = 1024;
const MAX_SEGMENT = 255;
const MAX_DEPTH = 32;

/** Parse a tenant path into checked segment names. `allowEmpty`: the empty path names the root itself. */
export function parsePath(path: unknown, allowEmpty = false): string[] {
  if (typeof path !== 'string') throw new DirectoryError('EINVAL', 'a path must be a string');
  if (path === '' && allowEmpty) return [];
  if (path.length === 0 || path.length > MAX_PATH) throw new DirectoryError('EINVAL', `a path must be 1-${MAX_PATH} characters`);
  if (path.startsWith('/')) throw new DirectoryError('EINVAL', 'absolute paths are not allowed');
  const segments = path.split('/');
  if (segments.length > MAX_DEPTH) throw new DirectoryError('EINVAL', `paths are at most ${MAX_DEPTH} levels deep`);
  for (const s of segments) {
    if (s === '') throw new DirectoryError('EINVAL', 'empty path segments are not allowed');
    if (s === '.' || s === '..') throw new DirectoryError('EINVAL', `"${s}" segments are not allowed`);
    if (s.length > MAX_SEGMENT) throw new DirectoryError('EINVAL', `a name is at most ${MAX_SEGMENT} characters`);
    if (/[\\\u0000-\u001f\u007f]/.test(s)) throw new DirectoryError('EINVAL', 'backslashes, NUL and control characters are not allowed in names');
  }
  return segments;
}

export interface Stat {
  type: 'file' | 'directory';
  size: number;
  modified: number;
}

/** Shared usage counter for a worker's whole tree (subdirectory capabilities count against it too). */
export class Usage {
  bytes = 0;
  readonly quota: number;
  constructor(quota: number) {
    this.quota = quota;
  }
}

export class WorkerDirectory {
  readonly #root: string;
  readonly #usage: Usage;

  constructor(root: string, usage: Usage) {
    this.#root = root;
    this.#usage = usage;
  }

  /** Open a worker's directory, creating it, and count what it holds. */
  static async open(root: string, quotaBytes: number): Promise<WorkerDirectory> {
    await fs.mkdir(root, { recursive: true, mode: 0o700 });
    const usage = new Usage(quotaBytes);
    const dir = new WorkerDirectory(root, usage);
    usage.bytes = await dir.#size([]);
    return dir;
  }

  get usage(): { bytes: number; quota: number } {
    return { bytes: this.#usage.bytes, quota: this.#usage.quota };
  }

  async list(path: unknown = ''): Promise<{ name: string; type: 'file' | 'directory' }[]> {
    const dir = await this.#walk(parsePath(path, true), 'directory');
    const entries = await fs.readdir(dir, { withFileTypes: true });
    return entries
      .filter((e) => e.isFile() || e.isDirectory())
      .map((e) => ({ name: e.name, type: e.isDirectory() ? ('directory' as const) : ('file' as const) }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  async read(path: unknown): Promise<Uint8Array> {
    const file = await this.#walk(parsePath(path), 'file');
    const handle = await fs.open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      return new Uint8Array(await handle.readFile());
    } finally {
      await handle.close();
    }
  }

  async write(path: unknown, data: unknown): Promise<void> {
    if (!(data instanceof Uint8Array)) throw new DirectoryError('EINVAL', 'data must be bytes (Uint8Array)');
    const segments = parsePath(path);
    const parent = await this.#walk(segments.slice(0, -1), 'directory');
    const target = join(parent, segments.at(-1)!);
    const existing = await this.#lstat(target);
    if (existing && !existing.isFile()) throw new DirectoryError(existing.isDirectory() ? 'EISDIR' : 'EPERM', `${segments.join('/')} is not a regular file`);
    const delta = data.byteLength - (existing?.size ?? 0);
    if (this.#usage.bytes + delta > this.#usage.quota) throw new DirectoryError('EDQUOT', `directory quota of ${this.#usage.quota} bytes exceeded`);
    // Write a temporary file and rename it into place: a crash leaves the old or the new content, never half.
    const tmp = join(parent, `.cordon-tmp-${process.pid}-${Math.random().toString(36).slice(2)}`);
    const handle = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmp, target);
    this.#usage.bytes += delta;
  }

  async remove(path: unknown): Promise<boolean> {
    const segments = parsePath(path);
    const parent = await this.#walk(segments.slice(0, -1), 'directory');
    const target = join(parent, segments.at(-1)!);
    const st = await this.#lstat(target);
    if (!st) return false;
    if (st.isSymbolicLink()) throw new DirectoryError('ELOOP', 'symbolic links are not allowed');
    const bytes = st.isDirectory() ? await this.#size(segments) : st.size;
    await fs.rm(target, { recursive: true });
    this.#usage.bytes -= bytes;
    return true;
  }

  async stat(path: unknown): Promise<Stat | null> {
    const segments = parsePath(path);
    const parent = await this.#walk(segments.slice(0, -1), 'directory');
    const st = await this.#lstat(join(parent, segments.at(-1)!));
    if (!st) return null;
    if (!st.isFile() && !st.isDirectory()) throw new DirectoryError('ELOOP', 'symbolic links and special files are not allowed');
    return { type: st.isDirectory() ? 'directory' : 'file', size: st.isFile() ? st.size : 0, modified: st.mtimeMs };
  }

  async mkdir(path: unknown): Promise<void> {
    const segments = parsePath(path);
    let dir = this.#root;
    for (const s of segments) {
      dir = join(dir, s);
      const st = await this.#lstat(dir);
      if (!st) await fs.mkdir(dir, { mode: 0o700 });
      else if (!st.isDirectory() || st.isSymbolicLink()) throw new DirectoryError('ENOTDIR', `${s} is not a directory`);
    }
  }

  async rename(from: unknown, to: unknown): Promise<void> {
    const a = parsePath(from);
    const b = parsePath(to);
    if (b.length > a.length && a.every((s, i) => b[i] === s)) throw new DirectoryError('EINVAL', 'cannot move a directory into itself');
    const src = join(await this.#walk(a.slice(0, -1), 'directory'), a.at(-1)!);
    const dstParent = await this.#walk(b.slice(0, -1), 'directory');
    const st = await this.#lstat(src);
    if (!st) throw new DirectoryError('ENOENT', `${a.join('/')} does not exist`);
    if (st.isSymbolicLink()) throw new DirectoryError('ELOOP', 'symbolic links are not allowed');
    const dst = join(dstParent, b.at(-1)!);
    const existing = await this.#lstat(dst);
    if (existing) throw new DirectoryError('EEXIST', `${b.join('/')} already exists`);
    await fs.rename(src, dst);
  }

  /** A capability for a subdirectory: it cannot name anything above its own root. */
  async directory(path: unknown): Promise<WorkerDirectory> {
    const segments = parsePath(path);
    await this.mkdir(segments.join('/'));
    return new WorkerDirectory(await this.#walk(segments, 'directory'), this.#usage);
  }

  async #lstat(p: string) {
    try {
      return await fs.lstat(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  /** Walk segment by segment from the root; every step must exist and be of the expected kind, never a link. */
  async #walk(segments: string[], last: 'file' | 'directory'): Promise<string> {
    let p = this.#root;
    for (let i = 0; i < segments.length; i++) {
      p = join(p, segments[i]!);
      const st = await this.#lstat(p);
      const shown = segments.slice(0, i + 1).join('/');
      if (!st) throw new DirectoryError('ENOENT', `${shown} does not exist`);
      if (st.isSymbolicLink()) throw new DirectoryError('ELOOP', `${shown} is a symbolic link; links are not allowed`);
      const want = i === segments.length - 1 ? last : 'directory';
      if (want === 'directory' && !st.isDirectory()) throw new DirectoryError('ENOTDIR', `${shown} is not a directory`);
      if (want === 'file' && !st.isFile()) throw new DirectoryError('EISDIR', `${shown} is not a file`);
    }
    return p;
  }

  async #size(segments: string[]): Promise<number> {
    const dir = await this.#walk(segments, 'directory');
    let total = 0;
    for (const e of await fs.readdir(dir, { withFileTypes: true })) {
      if (e.isDirectory()) total += await this.#size([...segments, e.name]);
      else if (e.isFile()) total += (await fs.lstat(join(dir, e.name))).size;
    }
    return total;
  }
}
