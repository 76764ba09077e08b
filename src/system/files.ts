/**
 * Writing files so that readers (other processes included) see the old content or the new, never a
 * part: the exporter's outputs and writeYaml use it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { nodeCrypto } from '../lazy-builtins.js';

/**
 * Writes `text` to `file` so that readers see the old content or the new, never a part: a temp
 * file in the same folder, flushed, then renamed over the target.
 *
 * @example
 * ```ts
 * writeFileAtomic('out/stats.json', '{}');
 * ```
 */
export function writeFileAtomic(file: string, text: string): void {
  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${nodeCrypto().randomBytes(6).toString('hex')}.tmp`);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'wx', 0o644);
    fs.writeFileSync(fd, text, 'utf8');
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (error) {
    if (fd !== undefined) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw error;
  }
}

