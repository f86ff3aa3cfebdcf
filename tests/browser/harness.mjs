// What every browser check here shares: one line per check ("ok ..." or
// "FAILED ..."), Debian's chromium launched as a container's root allows, a
// page whose console, page and request errors are collected, and the
// verdict line with the exit status (0 only if every check passed).
import { chromium } from 'playwright-core';

export function checks() {
  let failed = 0;
  const ok = (what) => console.log(`ok ${what}`);
  const fail = (what) => { failed += 1; console.log(`FAILED ${what}`); };
  const check = (cond, what) => (cond ? ok(what) : fail(what));
  return { ok, fail, check, failed: () => failed };
}

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    headless: true,
    // Root in a container has no user namespaces for chromium's sandbox.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
}

// A new page whose problems go to `problems`: console and page errors,
// failed requests, answers >= 400 — except those `expected(response)`
// accepts, which the check judges itself (and then chromium's console line
// for a 4xx answer is not a problem either).
export async function watchedPage(browser, timeout, problems, expected = null) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.setDefaultTimeout(Math.min(timeout, 10000));
  page.on('console', (m) => {
    const judged = expected && /^Failed to load resource: the server responded with a status of 4\d\d/.test(m.text());
    if (m.type() === 'error' && !judged) problems.push(`console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on('response', (r) => {
    if (r.status() >= 400 && !(expected && expected(r))) problems.push(`HTTP ${r.status()}: ${r.url()}`);
  });
  return page;
}

export function finish(name, c, problems) {
  c.check(problems.length === 0, `no console, page or request errors${problems.length ? ': ' + problems.join(' | ') : ''}`);
  console.log(c.failed() === 0 ? `${name} browser check: all ok` : `${name} browser check: ${c.failed()} check(s) FAILED`);
  process.exit(c.failed() === 0 ? 0 : 1);
}
