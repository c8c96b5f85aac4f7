// Renders a local HTML page in headless Chromium for the report tests (tests/Host.Tests/HeadlessChromium.cs):
//   node tools/render-page.mjs FILE.html SCREENSHOT.png WIDTH HEIGHT
// prints one JSON line {"dom": ..., "console": [...], "browser": ...} and writes a full-page screenshot.
// The browser is the one the build fetched with npm (@sparticuz/chromium: a Chromium headless shell packed inside the npm
// package, with the NSS libraries it needs), so a fresh machine needs nothing beyond Node.js; $CHROMIUM names another
// (e.g. Debian's /usr/bin/chromium). puppeteer-core drives it over the DevTools protocol and downloads nothing.
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import chromium, { inflate } from '@sparticuz/chromium';
import puppeteer from 'puppeteer-core';

const [file, screenshot, width = '1280', height = '4000'] = process.argv.slice(2);
if (!file || !screenshot) {
  console.error('usage: node tools/render-page.mjs FILE.html SCREENSHOT.png [WIDTH] [HEIGHT]');
  process.exit(2);
}

let executablePath = process.env.CHROMIUM;
let args = ['--no-sandbox', '--disable-gpu', '--no-first-run', '--hide-scrollbars'];
if (!executablePath) {
  // The package unpacks into os.tmpdir(): the caller gives each run its own TMPDIR, so runs never share a half-unpacked
  // browser. Its NSS/NSPR libraries are unpacked only on AWS Lambda by the package; a plain Debian or Ubuntu machine may
  // lack them too, so they are unpacked here as well and put on the browser's library path.
  const bin = join(dirname(fileURLToPath(import.meta.resolve('@sparticuz/chromium'))), '..', 'bin');
  const libs = join(await inflate(join(bin, 'al2023.tar.br')), 'lib');
  process.env.LD_LIBRARY_PATH = [libs, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':');
  executablePath = await chromium.executablePath(bin);
  args = chromium.args;
}

const browser = await puppeteer.launch({
  executablePath,
  args,
  headless: 'shell',
  defaultViewport: { width: Number(width), height: Number(height) },
});
try {
  const page = await browser.newPage();
  const messages = [];
  page.on('console', m => messages.push(`${m.type()}: ${m.text()}${m.location()?.url ? ` (${m.location().url})` : ''}`));
  page.on('pageerror', e => messages.push(`pageerror: ${e.message}`));
  page.on('requestfailed', r => messages.push(`requestfailed: ${r.url()} ${r.failure()?.errorText ?? ''}`));
  await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
  const dom = await page.content();
  await page.screenshot({ path: screenshot, fullPage: false });
  process.stdout.write(JSON.stringify({ dom, console: messages, browser: await browser.version() }) + '\n');
} finally {
  await browser.close();
}
