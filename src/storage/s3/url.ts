/**
 * `s3://bucket/prefix?region=…&endpoint=…&forcePathStyle=true`: what the S3 driver is told by
 * CUSTODY_STORAGE_URL (and, for large pushes, `partSizeMiB` and `partsInFlight`). Credentials never come from the URL; the SDK's default chain finds them
 * (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws/*, instance roles).
 */

export interface S3Location {
  bucket: string;
  /** key prefix inside the bucket, '' or ending in '/' */
  prefix: string;
  region?: string;
  /** http(s)://host[:port] of an S3-compatible server; AWS's own endpoint when absent */
  endpoint?: string;
  forcePathStyle: boolean;
  /** ?partSizeMiB=: bytes per multipart part (5 MiB to 5 GiB, S3's limits) */
  partSize?: number;
  /** ?partsInFlight=: parts uploaded at once by all writes together (1 to 64) */
  partsInFlight?: number;
}

const queryKeys = new Set(['region', 'endpoint', 'forcePathStyle', 'partSizeMiB', 'partsInFlight']);
// Bucket names as S3 allows them (3–63 of lowercase letters, digits, dots and hyphens).
const bucketPattern = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export class S3UrlError extends Error {
  constructor(url: string, problem: string) {
    super(`bad S3 storage URL ${JSON.stringify(url)}: ${problem} (expected s3://bucket/prefix?region=…&endpoint=…&forcePathStyle=true)`);
    this.name = 'S3UrlError';
  }
}

export function parseS3Url(url: string): S3Location {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new S3UrlError(url, 'it cannot be parsed as a URL');
  }
  if (parsed.protocol !== 's3:') throw new S3UrlError(url, 'the scheme must be s3://');
  if (parsed.username !== '' || parsed.password !== '') {
    throw new S3UrlError(url, 'credentials do not belong in the URL: use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or an AWS profile');
  }
  if (parsed.port !== '') throw new S3UrlError(url, 'a port belongs in ?endpoint=, not after the bucket');
  const bucket = parsed.hostname;
  if (bucket === '') throw new S3UrlError(url, 'the bucket is missing');
  if (!bucketPattern.test(bucket)) throw new S3UrlError(url, `${JSON.stringify(bucket)} is not a valid bucket name`);
  const segments = parsed.pathname.split('/').filter((s) => s !== '');
  if (segments.some((s) => !/^[a-z0-9._-]+$/i.test(s) || s === '.' || s === '..')) {
    throw new S3UrlError(url, 'the prefix may hold only letters, digits, ".", "_", "-" and "/"');
  }
  const prefix = segments.length === 0 ? '' : `${segments.join('/')}/`;

  const location: S3Location = { bucket, prefix, forcePathStyle: false };
  for (const key of new Set(parsed.searchParams.keys())) {
    if (!queryKeys.has(key)) throw new S3UrlError(url, `unknown query parameter ${JSON.stringify(key)} (known: ${[...queryKeys].join(', ')})`);
    if (parsed.searchParams.getAll(key).length > 1) throw new S3UrlError(url, `${key} is given more than once`);
  }
  const region = parsed.searchParams.get('region');
  if (region !== null) {
    if (!/^[a-z0-9-]+$/.test(region)) throw new S3UrlError(url, `${JSON.stringify(region)} is not a region`);
    location.region = region;
  }
  const endpoint = parsed.searchParams.get('endpoint');
  if (endpoint !== null) {
    let e: URL;
    try {
      e = new URL(endpoint);
    } catch {
      throw new S3UrlError(url, `endpoint ${JSON.stringify(endpoint)} is not a URL`);
    }
    if (e.protocol !== 'http:' && e.protocol !== 'https:') throw new S3UrlError(url, 'endpoint must be http:// or https://');
    if (e.username !== '' || e.password !== '') throw new S3UrlError(url, 'credentials do not belong in the endpoint');
    location.endpoint = endpoint;
  }
  const pathStyle = parsed.searchParams.get('forcePathStyle');
  if (pathStyle !== null) {
    if (pathStyle !== 'true' && pathStyle !== 'false') throw new S3UrlError(url, 'forcePathStyle must be true or false');
    location.forcePathStyle = pathStyle === 'true';
  }
  const partSizeMiB = wholeParam(url, parsed, 'partSizeMiB', 5, 5120);
  if (partSizeMiB !== undefined) location.partSize = partSizeMiB * 1024 * 1024;
  const partsInFlight = wholeParam(url, parsed, 'partsInFlight', 1, 64);
  if (partsInFlight !== undefined) location.partsInFlight = partsInFlight;
  return location;
}

function wholeParam(url: string, parsed: URL, key: string, min: number, max: number): number | undefined {
  const text = parsed.searchParams.get(key);
  if (text === null) return undefined;
  const n = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(n >= min && n <= max)) throw new S3UrlError(url, `${key} must be a whole number from ${min} to ${max}`);
  return n;
}
