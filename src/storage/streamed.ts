/**
 * Who hears how many bytes of off-heap buffers the blob paths have streamed and dropped: the
 * hashing of pushes (src/oci/digest.ts) and the S3 store's reads. `custody serve` gives the buffer
 * pacer's counter (src/server/buffer-gc.ts), which frees the dead chunks early. None by default.
 */
let onStreamed: ((bytes: number) => void) | undefined;

export function setStreamedBytesListener(listener: ((bytes: number) => void) | undefined): void {
  onStreamed = listener;
}

/** `bytes` of buffers were just passed on, and are garbage once the receiver is done with them. */
export function streamed(bytes: number): void {
  onStreamed?.(bytes);
}
