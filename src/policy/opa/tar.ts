/**
 * A tar reader for OPA bundles: the archive's bytes are already in memory (unzipped within the
 * bundle's limits), so this reads headers off a Uint8Array instead of streaming. It reads what
 * `opa build` writes (Go's archive/tar: ustar, with PAX records when a name or size needs them)
 * and what GNU tar and bsdtar write for the same files (GNU long names, global PAX headers), and
 * refuses the rest: links, devices and FIFOs have no place in a bundle, and a header whose
 * checksum is wrong means the archive is damaged, not that the entry should be guessed at. Why
 * not a package: docs/decisions.md.
 *
 * Names come back normalised (no leading `/` or `./`, no empty or `.` segments); a name with a
 * `..` segment is refused, so that no entry can pass for another one (`x/../policy.wasm`).
 */

export class TarError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TarError';
  }
}

export interface TarEntry {
  /** the normalised path, e.g. `policy.wasm` or `metabolights/rules.rego` */
  name: string;
  kind: 'file' | 'directory';
  /** the file's bytes (a view into the archive: no copy) */
  bytes: Uint8Array;
}

export interface TarLimits {
  /** the most headers (files, directories, PAX and GNU records) the archive may hold */
  entries: number;
}

const BLOCK = 512;
const decoder = new TextDecoder('utf-8', { fatal: false });

/** The entries of a tar archive, in archive order. Throws TarError. */
export function readTar(archive: Uint8Array, limits: TarLimits): TarEntry[] {
  const entries: TarEntry[] = [];
  let headers = 0;
  let offset = 0;
  // what a PAX 'x' header or a GNU 'L' record says about the next entry only
  let nextPath: string | undefined;
  let nextSize: number | undefined;
  while (offset + BLOCK <= archive.length) {
    const header = archive.subarray(offset, offset + BLOCK);
    // the archive ends with two zero blocks; writers that stop after one, or none, end here too
    if (header.every((b) => b === 0)) break;
    if (++headers > limits.entries) throw new TarError(`the archive holds more than ${limits.entries} entries`);
    verifyChecksum(header, offset);
    const type = String.fromCharCode(header[156] ?? 0);
    const own = octal(header.subarray(124, 136), 'size', offset);
    // a PAX size applies to the file after the PAX header, never to another PAX or GNU record
    const size = type === 'x' || type === 'g' || type === 'L' ? own : (nextSize ?? own);
    const start = offset + BLOCK;
    const end = start + size;
    if (end > archive.length) throw new TarError(`the entry at byte ${offset} claims ${size} bytes, past the end of the archive`);
    const bytes = archive.subarray(start, end);
    offset = start + Math.ceil(size / BLOCK) * BLOCK;

    if (type === 'x') {
      // PAX extended header: records for the next entry
      const records = paxRecords(bytes, start);
      nextPath = records.get('path') ?? nextPath;
      const paxSize = records.get('size');
      if (paxSize !== undefined) {
        if (!/^\d{1,15}$/.test(paxSize)) throw new TarError(`a PAX size record is not a number: ${paxSize.slice(0, 40)}`);
        nextSize = Number(paxSize);
      }
      continue;
    }
    if (type === 'g') continue; // global PAX header: nothing in it changes what a file is
    if (type === 'L') {
      // GNU long name: the next entry's name, NUL-terminated
      nextPath = cString(bytes);
      continue;
    }
    const name = nextPath ?? headerName(header);
    nextPath = undefined;
    nextSize = undefined;
    if (type === '0' || type === '\0' || type === '7') entries.push({ name: normalise(name), kind: 'file', bytes });
    else if (type === '5') entries.push({ name: normalise(name), kind: 'directory', bytes: new Uint8Array(0) });
    else throw new TarError(`${describe(type)} ${JSON.stringify(name.slice(0, 200))} has no place in a bundle: only files and directories are read`);
  }
  return entries;
}

function describe(type: string): string {
  switch (type) {
    case '1':
      return 'the hard link';
    case '2':
      return 'the symbolic link';
    case '3':
    case '4':
      return 'the device';
    case '6':
      return 'the FIFO';
    default:
      return `the entry of type ${JSON.stringify(type)}`;
  }
}

function verifyChecksum(header: Uint8Array, offset: number): void {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (header[i] as number);
  const stored = octal(header.subarray(148, 156), 'checksum', offset);
  if (stored !== sum) throw new TarError(`the header at byte ${offset} has a wrong checksum: not a tar archive, or a damaged one`);
}

/** An octal number field (NUL- or space-terminated). Base-256 sizes (over 8 GiB) are refused: no bundle is that large. */
function octal(field: Uint8Array, what: string, offset: number): number {
  if (((field[0] ?? 0) & 0x80) !== 0) throw new TarError(`the header at byte ${offset} has a base-256 ${what}: far larger than a bundle may be`);
  const text = decoder
    .decode(field)
    .replace(/[\0 ]+$/, '')
    .trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarError(`the header at byte ${offset} has a ${what} that is not an octal number: not a tar archive, or a damaged one`);
  return parseInt(text, 8);
}

function cString(bytes: Uint8Array): string {
  const nul = bytes.indexOf(0);
  return decoder.decode(nul < 0 ? bytes : bytes.subarray(0, nul));
}

/** The name, with the ustar prefix field in front of it when there is one. */
function headerName(header: Uint8Array): string {
  const name = cString(header.subarray(0, 100));
  const magic = decoder.decode(header.subarray(257, 262));
  const prefix = magic === 'ustar' ? cString(header.subarray(345, 500)) : '';
  return prefix ? `${prefix}/${name}` : name;
}

/** PAX records: `<length> <key>=<value>\n`, where the length counts the whole record. */
function paxRecords(bytes: Uint8Array, offset: number): Map<string, string> {
  const records = new Map<string, string>();
  let i = 0;
  while (i < bytes.length) {
    const space = bytes.indexOf(0x20, i);
    const length = space < 0 ? NaN : Number(decoder.decode(bytes.subarray(i, space)));
    if (!Number.isInteger(length) || length <= space - i || i + length > bytes.length) {
      if (bytes.subarray(i).every((b) => b === 0)) break; // padding
      throw new TarError(`the PAX header at byte ${offset} is malformed`);
    }
    const record = decoder.decode(bytes.subarray(space + 1, i + length - 1));
    const eq = record.indexOf('=');
    if (eq > 0) records.set(record.slice(0, eq), record.slice(eq + 1));
    i += length;
  }
  return records;
}

function normalise(name: string): string {
  if (name.includes('\0')) throw new TarError(`an entry's name holds a NUL byte`);
  const segments = name.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) throw new TarError(`the entry ${JSON.stringify(name.slice(0, 200))} has a .. in its path`);
  return segments.join('/');
}
