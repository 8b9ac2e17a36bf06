/**
 * Makes OCI image layouts on disk for the real-client tests: one image, or a multi-arch index,
 * each with real gzip'd tar layers, so skopeo and podman have something genuine to copy.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';

const sha = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/** A ustar archive of regular files (enough for image layers). */
export function tarOf(files: Record<string, Buffer | string>): Buffer {
  const blocks: Buffer[] = [];
  for (const [name, content] of Object.entries(files)) {
    const data = Buffer.from(content);
    const header = Buffer.alloc(512);
    header.write(name, 0, 100);
    header.write('0000644\0', 100);
    header.write('0000000\0', 108);
    header.write('0000000\0', 116);
    header.write(data.length.toString(8).padStart(11, '0') + '\0', 124);
    header.write('14000000000\0', 136);
    header.write('        ', 148);
    header.write('0', 156);
    header.write('ustar\0' + '00', 257);
    let sum = 0;
    for (const byte of header) sum += byte;
    header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
    blocks.push(header, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

export interface Written {
  digest: string;
  size: number;
  body: Buffer;
}

async function writeBlob(dir: string, data: Buffer | string): Promise<Written> {
  const body = Buffer.from(data);
  const hex = sha(body);
  await writeFile(path.join(dir, 'blobs', 'sha256', hex), body);
  return { digest: `sha256:${hex}`, size: body.length, body };
}

/** What an image may carry beyond its files: config labels (`config.Labels`) and manifest annotations. */
export interface ImageExtras {
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

async function writeImage(dir: string, arch: string, extras: ImageExtras = {}): Promise<Written> {
  const tar = tarOf({ [`hello-${arch}.txt`]: `hello from ${arch}\n`, 'random.bin': randomBytes(64 * 1024) });
  const layer = await writeBlob(dir, gzipSync(tar));
  const config = await writeBlob(
    dir,
    JSON.stringify({
      architecture: arch,
      os: 'linux',
      config: { Cmd: ['/hello'], ...(extras.labels ? { Labels: extras.labels } : {}) },
      rootfs: { type: 'layers', diff_ids: [`sha256:${sha(tar)}`] },
      history: [{ created_by: 'custody test' }],
    }),
  );
  return writeBlob(
    dir,
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.size },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer.digest, size: layer.size }],
      ...(extras.annotations ? { annotations: extras.annotations } : {}),
    }),
  );
}

async function startLayout(dir: string): Promise<void> {
  await mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
}

async function writeIndexJson(dir: string, entry: Record<string, unknown>): Promise<void> {
  await writeFile(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [entry] }));
}

/** A layout holding one linux/amd64 image under `tag` (with `extras`: labels, annotations); returns its manifest. */
export async function imageLayout(dir: string, tag: string, extras: ImageExtras = {}): Promise<Written> {
  await startLayout(dir);
  const manifest = await writeImage(dir, 'amd64', extras);
  await writeIndexJson(dir, {
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    digest: manifest.digest,
    size: manifest.size,
    annotations: { 'org.opencontainers.image.ref.name': tag },
  });
  return manifest;
}

/** A layout holding an amd64 + arm64 index under `tag`; returns the index and its children. */
export async function indexLayout(dir: string, tag: string): Promise<{ index: Written; children: Written[] }> {
  await startLayout(dir);
  const children = [await writeImage(dir, 'amd64'), await writeImage(dir, 'arm64')];
  const index = await writeBlob(
    dir,
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: children.map((c, i) => ({
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: c.digest,
        size: c.size,
        platform: { architecture: ['amd64', 'arm64'][i], os: 'linux' },
      })),
    }),
  );
  await writeIndexJson(dir, {
    mediaType: 'application/vnd.oci.image.index.v1+json',
    digest: index.digest,
    size: index.size,
    annotations: { 'org.opencontainers.image.ref.name': tag },
  });
  return { index, children };
}
