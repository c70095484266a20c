/**
 * Debian's nginx as the front server users run instead of mongrel2: one worker process, in the
 * foreground, in a temporary folder of its own (config, pid, logs, temp paths), on a free loopback
 * port. Either a reverse proxy to `upstream` (`proxy_http_version 1.1`, an upstream `keepalive`
 * pool, the client's Host passed on) or a static `root` (the floor of the front server's cost).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../test/helpers/mongrel2.js';

export const NGINX_BIN = process.env.NGINX_BIN ?? '/usr/sbin/nginx';

let nginxChecked: string | undefined | null = null;
/** Why nginx cannot be used here, or undefined. */
export function nginxMissing(): string | undefined {
  if (nginxChecked === null) {
    const r = spawnSync(NGINX_BIN, ['-v'], { encoding: 'utf8' });
    nginxChecked = r.status === 0 ? undefined : `nginx not available at ${NGINX_BIN} (Debian's nginx-light or nginx)`;
  }
  return nginxChecked;
}

export interface NginxService {
  readonly pid: number;
  stop(): Promise<void>;
}

export interface NginxOptions<S extends NginxService> {
  /** host:port of the server to proxy to. */
  upstream?: string;
  /** Files to serve from nginx's own root instead (name → content). */
  staticFiles?: Record<string, string>;
  /** Starts the nginx process with these arguments (the bench's service wrapper). */
  spawn(args: string[]): S;
}

/** The nginx.conf text: a pure function of the folder, the port and what to serve. */
export function nginxConfig(dir: string, port: number, upstream: string | undefined): string {
  const location = upstream
    ? [
        '    location / {',
        '      proxy_pass http://app;',
        '      proxy_http_version 1.1;',
        '      proxy_set_header Connection "";',
        '      proxy_set_header Host $host;',
        '    }',
      ]
    : [`    location /static/ { root ${dir}; }`];
  return [
    'worker_processes 1;',
    'daemon off;',
    `pid ${dir}/nginx.pid;`,
    `error_log ${dir}/error.log warn;`,
    'events { worker_connections 1024; }',
    'http {',
    '  default_type text/plain;',
    `  access_log ${dir}/access.log;`,
    `  client_body_temp_path ${dir}/tmp/body;`,
    `  proxy_temp_path ${dir}/tmp/proxy;`,
    `  fastcgi_temp_path ${dir}/tmp/fastcgi;`,
    `  uwsgi_temp_path ${dir}/tmp/uwsgi;`,
    `  scgi_temp_path ${dir}/tmp/scgi;`,
    ...(upstream ? [`  upstream app { server ${upstream}; keepalive 32; }`] : []),
    '  server {',
    `    listen 127.0.0.1:${port};`,
    ...location,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** Starts nginx; the caller waits for its port. Stopping removes its folder. */
export async function startNginx<S extends NginxService>(options: NginxOptions<S>): Promise<{ svc: S; baseUrl: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wsgid-nginx-'));
  mkdirSync(path.join(dir, 'tmp'));
  if (options.staticFiles) {
    mkdirSync(path.join(dir, 'static'));
    for (const [name, text] of Object.entries(options.staticFiles)) writeFileSync(path.join(dir, 'static', name), text);
  }
  const port = await freePort();
  const conf = path.join(dir, 'nginx.conf');
  writeFileSync(conf, nginxConfig(dir, port, options.upstream));
  // nginx's worker runs as nobody under a root master: the folder must be searchable.
  spawnSync('chmod', ['-R', 'a+rX', dir]);
  const started = options.spawn(['-c', conf, '-p', dir]);
  const svc: S = {
    ...started,
    stop: async () => {
      await started.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return { svc, baseUrl: `http://127.0.0.1:${port}` };
}
