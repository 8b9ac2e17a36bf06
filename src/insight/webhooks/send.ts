/**
 * One delivery attempt over HTTP: a POST that cannot hang the worker. Each attempt has a deadline
 * that covers connecting, sending and reading the answer; only the first bytes of the answer are
 * kept (a receiver's page of HTML is not the log's business), and an answer longer than
 * `maxResponseBytes` is cut off there. Redirects are not followed (a 3xx is a failure: the URL is
 * the admin's to fix, and following one could lead the request past the SSRF check). Private
 * addresses are refused at connection time unless allowed (address.ts).
 */
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import type { Envelope } from './envelope.ts';
import { hostOf, isPrivateAddress, publicOnlyLookup } from './address.ts';

export interface SendResult {
  /** a 2xx answer */
  ok: boolean;
  /** the HTTP status, 0 when there was none */
  status: number;
  /** '' when ok */
  error: string;
  /** the start of the response body */
  response: string;
  durationMs: number;
}

export interface Sender {
  send(url: string, envelope: Envelope): Promise<SendResult>;
  close(): void;
}

export interface SenderOptions {
  timeoutMs: number;
  allowPrivateNetworks: boolean;
  userAgent: string;
  /** characters of the answer kept for the log */
  excerptChars?: number;
  /** read at most this much of an answer, then close the connection */
  maxResponseBytes?: number;
  /** connections kept per receiver */
  socketsPerHost?: number;
}

export function httpSender(options: SenderOptions): Sender {
  const excerptChars = options.excerptChars ?? 512;
  const maxResponseBytes = options.maxResponseBytes ?? 64 * 1024;
  const agentOptions = { keepAlive: true, maxSockets: options.socketsPerHost ?? 8, maxFreeSockets: 2 };
  const agents = { http: new http.Agent(agentOptions), https: new https.Agent(agentOptions) };

  const send = (raw: string, envelope: Envelope): Promise<SendResult> => {
    const started = performance.now();
    const done = (r: Omit<SendResult, 'durationMs'>): SendResult => ({ ...r, durationMs: performance.now() - started });
    const failed = (error: string, status = 0, response = ''): SendResult => done({ ok: false, status, error, response });
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      return Promise.resolve(failed(`not a URL: ${raw.slice(0, 200)}`));
    }
    const secure = url.protocol === 'https:';
    if (!secure && url.protocol !== 'http:') return Promise.resolve(failed(`not an http(s) URL: ${url.protocol}`));
    // an address in the URL is never looked up, so it is checked here
    if (!options.allowPrivateNetworks && isIP(hostOf(url)) !== 0 && isPrivateAddress(hostOf(url)))
      return Promise.resolve(failed(`${hostOf(url)} is a loopback, private or link-local address (insight.webhooks.allowPrivateNetworks)`));
    return new Promise<SendResult>((resolve) => {
      let settled = false;
      const finish = (r: SendResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        resolve(r);
      };
      const req = (secure ? https : http).request(url, {
        method: 'POST',
        agent: secure ? agents.https : agents.http,
        headers: { ...envelope.headers, 'content-length': Buffer.byteLength(envelope.body), 'user-agent': options.userAgent },
        ...(options.allowPrivateNetworks ? {} : { lookup: publicOnlyLookup }),
      });
      const deadline = setTimeout(() => {
        const error = `no answer within ${options.timeoutMs} ms`;
        finish(failed(error));
        req.destroy(new Error(error));
      }, options.timeoutMs);
      req.on('error', (err: NodeJS.ErrnoException) => finish(failed(describe(err))));
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        const chunks: Buffer[] = [];
        let size = 0;
        const answer = () => {
          const response = Buffer.concat(chunks).toString('utf8').slice(0, excerptChars);
          if (status >= 200 && status < 300) return finish(done({ ok: true, status, error: '', response }));
          const location = res.headers.location;
          const error =
            status >= 300 && status < 400 ? `HTTP ${status}: redirects are not followed${location ? ` (to ${location.slice(0, 200)})` : ''}` : `HTTP ${status}`;
          finish(failed(error, status, response));
        };
        res.on('data', (chunk: Buffer) => {
          if (size < excerptChars * 4) chunks.push(chunk);
          size += chunk.length;
          if (size > maxResponseBytes) {
            // enough: the rest is not read, and the connection is not reused
            answer();
            res.destroy();
          }
        });
        res.on('end', answer);
        res.on('error', () => answer());
      });
      req.end(envelope.body);
    });
  };

  return {
    send,
    close() {
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}

function describe(err: NodeJS.ErrnoException): string {
  if (err.code === 'ECONNREFUSED') return 'connection refused';
  if (err.code === 'ENOTFOUND') return `no such host (${err.message.replace(/^getaddrinfo ENOTFOUND /, '')})`;
  if (err.code === 'ECONNRESET') return 'the connection was reset';
  return err.code && !err.message.includes(err.code) ? `${err.message} (${err.code})` : err.message;
}
