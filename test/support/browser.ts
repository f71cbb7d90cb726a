import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

/**
 * A real headless Chromium (Debian's `chromium` package, driven by playwright-core: its own browser
 * downloads cannot happen here). `STEADY_CHROMIUM` names another binary.
 */

export const CHROMIUM_PATH = process.env.STEADY_CHROMIUM ?? '/usr/bin/chromium';
export const chromiumMissing: string | null = fs.existsSync(CHROMIUM_PATH)
  ? null
  : `no Chromium at ${CHROMIUM_PATH} (apt-get install -y chromium, or set STEADY_CHROMIUM): browser tests skipped`;

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface BrowserSession {
  readonly context: BrowserContext;
  readonly page: Page;
  /** Every URL the pages asked for, in order (documents, assets, fetches, the event stream). */
  readonly requests: string[];
  /** Console errors and uncaught exceptions, as text. */
  readonly errors: string[];
  close(): Promise<void>;
}

/** A fresh profile each time: nothing cached, nothing stored from an earlier run. */
export async function openBrowser(options: { width?: number; height?: number; colorScheme?: 'light' | 'dark' } = {}): Promise<BrowserSession> {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'steady-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: ARGS,
    viewport: { width: options.width ?? 1280, height: options.height ?? 800 },
    colorScheme: options.colorScheme ?? 'light',
  });
  const requests: string[] = [];
  const errors: string[] = [];
  context.on('request', (r) => requests.push(r.url()));
  const watch = (page: Page) => {
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`console: ${m.text()} (${m.location().url})`);
    });
    page.on('pageerror', (e) => errors.push(`exception: ${e.message}`));
  };
  const first = context.pages()[0];
  if (first) watch(first);
  context.on('page', watch);
  const page = first ?? (await context.newPage());
  return {
    context,
    page,
    requests,
    errors,
    async close() {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}
