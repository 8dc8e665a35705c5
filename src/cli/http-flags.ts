// The gateway flags shared by `dbc up` and `dbc client` (api/gateway.ts): image centres and their upload
// credentials, the local image centre, HTTP server limits and the failed-auth budget (docs/request-flow.md
// "HTTP limits").
import type { Command } from 'commander';
import type { ImageCentreOptions } from '../api/gateway.js';
import type { AuthBudgetOptions } from '../api/auth-budget.js';
import { DEFAULT_AUTH_BUDGET } from '../api/auth-budget.js';
import type { HttpLimits } from '../api/server.js';

export function addHttpOptions(cmd: Command): Command {
  return cmd
    .option('--http-max-connections <n>', 'open HTTP connections at most; more are closed at once (default: half the open-file limit, 64..10000)')
    .option('--http-headers-timeout <seconds>', 'request headers must arrive within this', '10')
    .option('--http-body-timeout <seconds>', 'the whole request (headers and body) must arrive within this', '60')
    .option('--http-keep-alive-timeout <seconds>', 'an idle keep-alive connection is closed after this', '5')
    .option('--http-idle-timeout <seconds>', 'a connection without any traffic is closed after this', '120')
    .option('--http-max-requests-per-socket <n>', 'requests one connection may carry (0: unlimited)', '1000')
    .option(
      '--http-auth-fail-limit <n>',
      'failed authentications (`check authority failed`) per address and window before the address is refused (0: no budget)',
      String(DEFAULT_AUTH_BUDGET.limit),
    )
    .option('--http-auth-fail-window <seconds>', 'the window of --http-auth-fail-limit', String(DEFAULT_AUTH_BUDGET.windowMs / 1000));
}

export interface HttpFlags {
  httpMaxConnections?: string;
  httpHeadersTimeout?: string;
  httpBodyTimeout?: string;
  httpKeepAliveTimeout?: string;
  httpIdleTimeout?: string;
  httpMaxRequestsPerSocket?: string;
  httpAuthFailLimit?: string;
  httpAuthFailWindow?: string;
}

export function httpFromFlags(o: HttpFlags): { http: Partial<HttpLimits>; authBudget: Partial<AuthBudgetOptions> } {
  const num = (v: string | undefined, flag: string, min: number, max: number): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${flag} must be a number in [${min}, ${max}]`);
    return n;
  };
  const ms = (v: string | undefined, flag: string, min: number, max: number) => {
    const s = num(v, flag, min, max);
    return s === undefined ? undefined : Math.round(s * 1000);
  };
  const http: Partial<HttpLimits> = {};
  const set = <K extends keyof HttpLimits>(k: K, v: number | undefined) => {
    if (v !== undefined) http[k] = v;
  };
  set('maxConnections', num(o.httpMaxConnections, 'http-max-connections', 1, 1_000_000));
  set('headersTimeoutMs', ms(o.httpHeadersTimeout, 'http-headers-timeout', 0.5, 3600));
  set('requestTimeoutMs', ms(o.httpBodyTimeout, 'http-body-timeout', 0.5, 86400));
  set('keepAliveTimeoutMs', ms(o.httpKeepAliveTimeout, 'http-keep-alive-timeout', 0.1, 3600));
  set('idleTimeoutMs', ms(o.httpIdleTimeout, 'http-idle-timeout', 1, 86400));
  set('maxRequestsPerSocket', num(o.httpMaxRequestsPerSocket, 'http-max-requests-per-socket', 0, 1_000_000));
  const authBudget: Partial<AuthBudgetOptions> = {};
  const limit = num(o.httpAuthFailLimit, 'http-auth-fail-limit', 0, 1_000_000);
  if (limit !== undefined) authBudget.limit = Math.floor(limit);
  const windowMs = ms(o.httpAuthFailWindow, 'http-auth-fail-window', 1, 86400);
  if (windowMs !== undefined) authBudget.windowMs = windowMs;
  return { http, authBudget };
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** the image centre flags and the HTTP flags; `localImageServer` is the default of --local-image-server */
export function addGatewayOptions(cmd: Command, o: { localImageServer: boolean }): Command {
  cmd
    .option('--image-server <ID,host,port,module>', 'an image centre (rsync daemon), as the original image_server=; repeatable', collect, [])
    .option(
      '--image-server-secret <host:port/module=[upload_module/]user:/password-file>',
      'upload credentials for an image centre (docs/storage.md); repeatable',
      collect,
      [],
    );
  if (o.localImageServer) {
    cmd.option('--no-local-image-server', 'do not start the local image centre (rsync daemon on DATA_DIR/image-server/)');
  } else {
    cmd.option('--local-image-server', 'start a local image centre (rsync daemon on DATA_DIR/image-server/) as the first free ID_n', false);
  }
  cmd.option('--local-image-server-host <addr>', 'the address GPU nodes reach the local image centre at (default: --host; 127.0.0.1 for 0.0.0.0)');
  return addHttpOptions(cmd);
}

export interface GatewayFlags extends HttpFlags {
  imageServer?: string[];
  imageServerSecret?: string[];
  localImageServer?: boolean;
  localImageServerHost?: string;
}

export function gatewayFromFlags(
  o: GatewayFlags,
): Pick<ImageCentreOptions, 'imageServers' | 'imageServerSecrets' | 'localImageServer' | 'advertise'> & ReturnType<typeof httpFromFlags> {
  return {
    imageServers: o.imageServer ?? [],
    imageServerSecrets: o.imageServerSecret ?? [],
    localImageServer: o.localImageServer === true,
    ...(o.localImageServerHost ? { advertise: o.localImageServerHost } : {}),
    ...httpFromFlags(o),
  };
}
