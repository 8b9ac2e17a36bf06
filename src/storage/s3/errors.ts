/**
 * What an error of the S3 SDK means to the registry. Called only around SDK calls, after the
 * SDK's own retries: errors of the body being uploaded (a client that went away) or of a
 * beforeCommit check never pass through here and keep their meaning.
 */
import { StorageUnavailableError } from '../blobstore.ts';

interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: { throttling?: boolean };
}

const notFound = new Set(['NoSuchKey', 'NotFound']);
const throttling = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'TooManyRequestsException', 'RequestLimitExceeded', 'ServiceUnavailable']);
const credentials = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'ExpiredToken', 'InvalidToken', 'CredentialsProviderError']);

/** The object is not there (GetObject's NoSuchKey, HeadObject's bare 404). */
export function isNotFound(err: unknown): boolean {
  const e = err as SdkError | undefined;
  if (e === undefined || e === null) return false;
  return notFound.has(e.name ?? '') || (e.$metadata?.httpStatusCode === 404 && e.name !== 'NoSuchBucket' && e.name !== 'NoSuchUpload');
}

/**
 * A StorageUnavailableError for what the backend answered (or did not), with how long a client
 * should wait: a throttled server is asked again soon, a misconfigured one later.
 */
export function unavailable(err: unknown, what: string, bucket: string): StorageUnavailableError {
  const e = (err ?? {}) as SdkError;
  const name = e.name ?? e.code ?? 'Error';
  const status = e.$metadata?.httpStatusCode;
  let reason: string;
  let retryAfterSeconds: number;
  if (name === 'NoSuchBucket') {
    reason = `the bucket ${bucket} does not exist`;
    retryAfterSeconds = 60;
  } else if (credentials.has(name) || status === 403) {
    reason = `S3 refused the credentials (${name})`;
    retryAfterSeconds = 60;
  } else if (throttling.has(name) || e.$retryable?.throttling === true || status === 429 || status === 503) {
    reason = `S3 is throttling requests (${name})`;
    retryAfterSeconds = 2;
  } else if (name === 'TimeoutError' || name === 'AbortError' || e.code === 'ETIMEDOUT') {
    reason = 'S3 did not answer in time';
    retryAfterSeconds = 5;
  } else if (status !== undefined) {
    reason = `S3 answered ${status} ${name}`;
    retryAfterSeconds = 5;
  } else {
    reason = `S3 cannot be reached (${e.code ?? name}: ${e.message ?? ''})`;
    retryAfterSeconds = 5;
  }
  return new StorageUnavailableError(`${what}: ${reason}`, { retryAfterSeconds, cause: err });
}
