import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';

/** The dashboard as the API serves it: one HTML page and content-hashed assets. */

export interface DashboardFile {
  /** The file name under /assets/ (content-hashed), or `index.html`. */
  readonly name: string;
  readonly contentType: string;
  readonly body: Uint8Array;
  /** The same bytes gzipped once, for clients that accept it. */
  readonly gzip: Uint8Array;
  /** A strong validator: the body's SHA-256, quoted. */
  readonly etag: string;
}

export interface DashboardBundle {
  readonly index: DashboardFile;
  /** By name, as linked from the page: `/assets/<name>`. */
  readonly assets: ReadonlyMap<string, DashboardFile>;
}

export const ASSET_PATH = '/assets/';

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.map': 'application/json; charset=utf-8',
};

export function contentTypeOf(name: string): string {
  const dot = name.lastIndexOf('.');
  return CONTENT_TYPES[dot === -1 ? '' : name.slice(dot)] ?? 'application/octet-stream';
}

export function dashboardFile(name: string, body: Uint8Array): DashboardFile {
  return {
    name,
    contentType: contentTypeOf(name),
    body,
    gzip: gzipSync(body, { level: 9 }),
    etag: `"${createHash('sha256').update(body).digest('base64url')}"`,
  };
}

/** `sha384-…` for a `<script integrity>` or `<link integrity>`. */
export const subresourceIntegrity = (body: Uint8Array): string => `sha384-${createHash('sha384').update(body).digest('base64')}`;

/**
 * The page: no inline script or style (the Content-Security-Policy forbids both), every asset
 * by its hashed name with its integrity, nothing from another origin.
 */
export function indexHtml(assets: { readonly script: DashboardFile; readonly style: DashboardFile; readonly icon: DashboardFile }): string {
  const href = (f: DashboardFile) => `${ASSET_PATH}${f.name}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="referrer" content="no-referrer">
<title>steady</title>
<link rel="icon" type="image/svg+xml" href="${href(assets.icon)}">
<link rel="stylesheet" href="${href(assets.style)}" integrity="${subresourceIntegrity(assets.style.body)}">
<script type="module" src="${href(assets.script)}" integrity="${subresourceIntegrity(assets.script.body)}"></script>
</head>
<body>
<div id="root"></div>
<noscript><p>steady's dashboard needs JavaScript. The API is at <a href="/openapi.json">/openapi.json</a>.</p></noscript>
</body>
</html>
`;
}
