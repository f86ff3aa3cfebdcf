// Loads the credit-bus dashboard in a real headless chromium and checks that it
// shows live figures that move while records flow, marks up and down services,
// and raises no console or page error.
//
//   node dashboard.mjs --url http://127.0.0.1:9200/ --department courts \
//        [--up courts,registry] [--down gone] [--lag-group credit.normaliser.courts] \
//        [--notice-kind punishment] \
//        [--screenshot out.png] [--timeout-s 60]
//
// Prints one line per check ("ok ..." or "FAILED ..."); exits 0 only if all pass.
import { checks, finish, launch, watchedPage } from './harness.mjs';
import { parseArgs } from 'node:util';

const { values: a } = parseArgs({
  options: {
    url: { type: 'string' },
    department: { type: 'string', default: 'courts' },
    up: { type: 'string', default: '' },
    down: { type: 'string', default: '' },
    'lag-group': { type: 'string', default: '' },
    'notice-kind': { type: 'string', default: '' },
    'target-rate': { type: 'string', default: '' },
    broker: { type: 'string', default: '' },
    screenshot: { type: 'string', default: '' },
    'timeout-s': { type: 'string', default: '60' },
  },
});
if (!a.url) {
  console.log('FAILED usage: --url is required');
  process.exit(2);
}
const timeout = Number(a['timeout-s']) * 1000;
const list = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);

const c = checks();
const { ok, fail, check } = c;

const browser = await launch();
const problems = [];
try {
  const page = await watchedPage(browser, timeout, problems);

  const resp = await page.goto(a.url, { waitUntil: 'load', timeout });
  check(resp && resp.status() === 200, `page loads (HTTP ${resp && resp.status()})`);
  check((await page.title()).includes('credit-bus'), 'page title names credit-bus');

  const dept = a.department;
  const cell = (field) => `tr[data-dept="${dept}"] td[data-field="${field}"]`;
  const value = async (field) => Number(await page.getAttribute(cell(field), 'data-value'));

  // Live figures: the department's received total appears and is above zero.
  await page.waitForFunction(
    (sel) => { const c = document.querySelector(sel); return c && Number(c.dataset.value) > 0; },
    cell('records_in'), { timeout },
  ).then(() => ok(`${dept} received total shows a live figure`),
    () => fail(`${dept} received total never rose above 0 within ${a['timeout-s']} s`));
  // The figure and the scrape time it came with, read in one go (two reads
  // could straddle a page update and see the figure move without the time).
  const [first, firstText, firstAt] = await page.evaluate((sel) => {
    const c = document.querySelector(sel);
    return [Number(c.dataset.value), c.textContent || '',
      Number(document.querySelector('#updated').dataset.at)];
  }, cell('records_in'));
  check(firstText.replace(/,/g, '') !== '' && /^[\d,]+$/.test(firstText.trim()),
    `${dept} received total is displayed as a number (${firstText.trim()})`);

  // While records flow, the figures move and the rate is positive.
  await page.waitForFunction(
    ([sel, v]) => Number(document.querySelector(sel)?.dataset.value) > v,
    [cell('records_in'), first], { timeout },
  ).then(async () => ok(`${dept} received total moved (${first} -> ${await value('records_in')})`),
    () => fail(`${dept} received total stayed at ${first}`));
  await page.waitForFunction(
    (sel) => Number(document.querySelector(sel)?.dataset.value) > 0,
    cell('in_per_s'), { timeout },
  ).then(async () => ok(`${dept} throughput shown (${await page.textContent(cell('in_per_s'))} /s)`),
    () => fail(`${dept} throughput stayed at 0 /s`));
  const at = Number(await page.getAttribute('#updated', 'data-at'));
  check(at > firstAt, 'the scrape time moves');
  const spark = await page.$$eval(`tr[data-dept="${dept}"] svg.spark polyline`, (l) => l.length);
  check(spark === 1, `${dept} has a sparkline`);
  const accepted = await value('records_out');
  check(accepted > 0, `${dept} accepted total shown (${accepted})`);

  for (const name of list(a.up)) {
    const up = await page.getAttribute(`#services li[data-target="${name}"]`, 'data-up');
    check(up === 'true', `service ${name} shown up`);
  }
  for (const name of list(a.down)) {
    const sel = `#services li[data-target="${name}"]`;
    const up = await page.getAttribute(sel, 'data-up');
    const text = (await page.textContent(sel)) || '';
    check(up === 'false' && text.includes('down'), `service ${name} shown down (${text.trim()})`);
  }
  if (a['lag-group']) {
    await page.waitForSelector(`#lag tr[data-group="${a['lag-group']}"]`, { timeout })
      .then(() => ok(`consumer lag shown for ${a['lag-group']}`),
        () => fail(`no consumer lag row for ${a['lag-group']}`));
  }
  if (a['notice-kind']) {
    // Some department's column for this kind rises above 0 (the kinds come
    // from the engine's own label values), and on every row the kinds add up
    // to the total.
    const kind = a['notice-kind'];
    await page.waitForFunction(
      (k) => [...document.querySelectorAll(`#notices td[data-field="${k}"]`)].some((c) => Number(c.dataset.value) > 0),
      kind, { timeout },
    ).then(async () => ok(`notices shown by kind: ${kind} ${await page.$$eval(`#notices td[data-field="${kind}"]`,
      (cs) => cs.map((c) => c.parentElement.dataset.dept + '=' + c.dataset.value).join(' '))}`),
    () => fail(`no department's ${kind} notices rose above 0`));
    const rows = await page.$$eval('#notices tbody tr[data-dept]', (trs) => trs.map((tr) => {
      const heads = [...document.querySelectorAll('#notices thead th[data-kind]')].map((h) => h.dataset.kind);
      const v = (f) => Number(tr.querySelector(`td[data-field="${f}"]`)?.dataset.value ?? NaN);
      return { dept: tr.dataset.dept, sum: heads.reduce((a, k) => a + v(k), 0), total: v('total') };
    }));
    check(rows.length > 0 && rows.every((r) => r.sum === r.total),
      `every notice row's kinds add up to its total (${rows.map((r) => `${r.dept} ${r.sum}/${r.total}`).join(', ')})`);
  }
  // What an ops person looks for: the scrape time with its time zone, lag
  // per group with a trend, latency quantiles, target against reached.
  const updated = (await page.textContent('#updated')) || '';
  check(/\(UTC[+-]\d\d:\d\d, /.test(updated), `scrape time names its time zone (${updated.trim()})`);
  if (a['lag-group']) {
    const trend = await page.$$eval(`#lag-groups tr[data-group="${a['lag-group']}"] svg.spark`, (l) => l.length);
    check(trend === 1, `lag of ${a['lag-group']} shown with its trend`);
  }
  await page.waitForFunction(
    () => [...document.querySelectorAll('#latency td[data-field="p99_s"]')].some((c) => Number(c.dataset.value) > 0),
    null, { timeout },
  ).then(async () => ok(`latency p50/p99 shown (${(await page.textContent('#latency tbody')).replace(/\s+/g, ' ').trim()})`),
    () => fail('no latency quantile shown'));
  if (a.broker) {
    const up = await page.getAttribute(`#brokers tr[data-broker="${a.broker}"]`, 'data-up');
    check(up === 'true', `broker ${a.broker} shown listening`);
  }
  if (a['target-rate']) {
    const t = await value('target_per_s');
    check(t === Number(a['target-rate']), `${dept} target rate shown beside the rate reached (${t} /s)`);
  }
  const banner = await page.isVisible('#banner');
  check(!banner, 'no "not answering" banner');
  if (a.screenshot) await page.screenshot({ path: a.screenshot, fullPage: true });
} catch (e) {
  fail(`unexpected: ${e.message}`);
} finally {
  await browser.close();
}
finish('dashboard', c, problems);
