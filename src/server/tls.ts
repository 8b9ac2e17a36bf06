/**
 * HTTPS served directly: the certificate and key are PEM files named by tls.certificate and
 * tls.key (CUSTODY_TLS_CERT, CUSTODY_TLS_KEY). A renewed certificate is picked up without a
 * restart: the files are read again on SIGHUP and every tls.reloadSeconds, and when they changed
 * and still make a valid pair, new connections get them (https.Server#setSecureContext);
 * connections already open keep the certificate they started with.
 */
import { X509Certificate, createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Server } from 'node:https';
import { createSecureContext } from 'node:tls';
import type { FastifyBaseLogger } from 'fastify';
import { settingSource } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { reason, StartupError } from './startup.ts';

export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
}

/** The certificate and key to serve, checked; undefined when TLS is not configured. Throws StartupError. */
export async function readTls(config: Config): Promise<TlsFiles | undefined> {
  const { certificate, key } = config.tls;
  if (certificate === undefined || key === undefined) return undefined;
  const read = async (file: string, setting: string, what: string) => {
    try {
      return await readFile(file);
    } catch (err) {
      throw new StartupError(`cannot read the TLS ${what} ${file} (${settingSource(config, setting)}): ${reason(err)}`);
    }
  };
  const files = { cert: await read(certificate, 'tls.certificate', 'certificate'), key: await read(key, 'tls.key', 'key') };
  try {
    createSecureContext(files);
    new X509Certificate(files.cert);
  } catch (err) {
    throw new StartupError(
      `the TLS certificate ${certificate} (${settingSource(config, 'tls.certificate')}) and key ${key} ` +
        `(${settingSource(config, 'tls.key')}) are not a usable pair: ${reason(err)}`,
    );
  }
  return files;
}

/** What the log says about a certificate: enough to tell a renewal happened. */
export function describeCertificate(cert: Buffer): { subject: string; serial: string; validTo: string; fingerprint256: string } {
  const x = new X509Certificate(cert);
  return { subject: x.subject.replaceAll('\n', ', '), serial: x.serialNumber, validTo: new Date(x.validTo).toISOString(), fingerprint256: x.fingerprint256 };
}

const digest = (files: TlsFiles) => createHash('sha256').update(files.cert).update('\0').update(files.key).digest('hex');

export interface TlsReloader {
  /** reads the files again and, when they changed, serves them to new connections */
  reload(why: string): Promise<void>;
  stop(): void;
}

/**
 * Re-reads the certificate and key every tls.reloadSeconds (and whenever reload() is called).
 * A pair that does not load (a renewal half written: the new certificate beside the old key) is
 * logged and skipped; the previous certificate stays in use and the next read tries again.
 */
export function watchTls(server: Server, config: Config, log: FastifyBaseLogger, current: TlsFiles): TlsReloader {
  let served = digest(current);
  let running: Promise<void> = Promise.resolve();
  let failing: string | undefined;
  const once = async (why: string) => {
    let files: TlsFiles | undefined;
    try {
      files = await readTls(config);
    } catch (err) {
      const message = (err as Error).message;
      // One warning per distinct problem, not one every period.
      if (message !== failing) log.warn({ reason: why }, `${message}; still serving the previous certificate`);
      failing = message;
      return;
    }
    failing = undefined;
    if (!files) return;
    const next = digest(files);
    if (next === served) {
      if (why === 'SIGHUP') log.info({ reason: why, certificate: describeCertificate(files.cert) }, 'the TLS certificate is unchanged');
      return;
    }
    server.setSecureContext(files);
    served = next;
    log.info({ reason: why, certificate: describeCertificate(files.cert) }, 'loaded a renewed TLS certificate');
  };
  const reload = (why: string) => (running = running.then(() => once(why)));
  // every replica on its own (not a scheduled job): each serves its own copy of the files
  const timer = setInterval(() => void reload('periodic check'), config.tls.reloadSeconds * 1000);
  timer.unref();
  return { reload, stop: () => clearInterval(timer) };
}
