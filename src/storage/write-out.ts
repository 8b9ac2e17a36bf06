/** Writing into a stream and knowing when its bytes are taken. */
import type { Writable } from 'node:stream';

/** Resolves when `out` has taken the bytes (so the buffer may be reused); rejects if it closes first. */
export function writeOut(out: Writable, bytes: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    if (out.destroyed) return reject(new Error('the connection closed before the blob was sent'));
    const onClose = () => reject(new Error('the connection closed before the blob was sent'));
    out.once('close', onClose);
    out.write(bytes, (err) => {
      out.off('close', onClose);
      if (err) reject(err);
      else resolve();
    });
  });
}
