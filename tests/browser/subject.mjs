// The dashboard's subject view in a real headless chromium: an operator types
// a code into the page's box and sees the subject's record and measures in
// force as a read-only department may (masked), a bad code gets the archive's
// problem shown, the unmasked code never appears on the page, and nothing
// raises a console or page error.
//
//   node subject.mjs --url http://127.0.0.1:9200/ --code 44010619900101123X \
//        --masked-code '440106********123X' --masked-name '王**' --measure M-PROCUREMENT \
//        --bad-code 440106199001011231 [--timeout-s 30]
//
// Prints one line per check ("ok ..." or "FAILED ..."); exits 0 only if all pass.
import { checks, finish, launch, watchedPage } from './harness.mjs';
import { parseArgs } from 'node:util';

const { values: a } = parseArgs({
  options: {
    url: { type: 'string' },
    code: { type: 'string' },
    'masked-code': { type: 'string' },
    'masked-name': { type: 'string' },
    measure: { type: 'string' },
    'bad-code': { type: 'string' },
    'timeout-s': { type: 'string', default: '30' },
  },
});
for (const k of ['url', 'code', 'masked-code', 'masked-name', 'measure', 'bad-code']) {
  if (!a[k]) {
    console.log(`FAILED usage: --${k} is required`);
    process.exit(2);
  }
}
const timeout = Number(a['timeout-s']) * 1000;
const c = checks();
const { ok, fail, check } = c;

const browser = await launch();
const problems = [];
try {
  // The bad code's 400 is an answer under test; any other failure is a problem.
  const page = await watchedPage(browser, timeout, problems, (r) => r.url().endsWith('/api/subject'));

  const resp = await page.goto(a.url, { waitUntil: 'load', timeout });
  check(resp && resp.status() === 200, `page loads (HTTP ${resp && resp.status()})`);

  // A look-up as an operator does it: lower-case letters typed, Enter.
  await page.fill('#subject-code', a.code.toLowerCase());
  await page.press('#subject-code', 'Enter');
  await page.waitForSelector('#subject-head', { timeout });
  const shown = async (sel) => ((await page.textContent(sel)) || '').trim();
  check(await shown('#subject-head [data-field="code"]') === a['masked-code'],
    `the code is shown masked (${await shown('#subject-head [data-field="code"]')})`);
  check(await shown('#subject-head [data-field="name"]') === a['masked-name'],
    `the name is shown masked (${await shown('#subject-head [data-field="name"]')})`);
  const statuses = await page.$$eval('#subject-records td[data-field="status"]', (tds) => tds.map((t) => t.textContent));
  check(statuses.length > 0 && statuses.includes('active'), `the record's entries with their status (${statuses.join(', ')})`);
  const measures = await page.$$eval('#subject-measures td[data-field="measure"]', (tds) => tds.map((t) => t.textContent));
  check(measures.some((m) => m.includes(a.measure)), `the measure in force is listed (${measures.join(', ')})`);
  const why = await page.$$eval('#subject-measures td[data-field="why"]', (tds) => tds.map((t) => t.textContent));
  check(why.length > 0 && why.every((w) => w.includes('catalogue v')), `each measure says why (${why[0] || 'none'})`);
  const body = await page.textContent('body');
  check(!body.includes(a.code) && !body.includes(a.code.toLowerCase()), 'the unmasked code appears nowhere on the page');
  check(!(await page.isVisible('#subject-error')), 'no error shown for a good code');

  // A code with a wrong check digit: the archive's problem, shown as such.
  await page.fill('#subject-code', a['bad-code']);
  await page.click('#subject-go');
  await page.waitForSelector('#subject-error', { state: 'visible', timeout });
  const err = await page.$eval('#subject-error', (e) => ({ ...e.dataset, text: e.textContent }));
  check(err.type === 'bad-code' && err.source === 'archive' && err.status === '400',
    `a bad code shows the archive's problem (${err.text})`);
  check(!(await page.isVisible('#subject-head')), 'the previous subject is cleared');
} catch (e) {
  fail(`unexpected: ${e.message}`);
} finally {
  await browser.close();
}
finish('subject', c, problems);
