// Drives the dashboard in headless Chromium (Debian's /usr/bin/chromium)
// against a running gateway with one kubesim cluster named "web":
//   node dashboard.test.js BASE_URL SCREENSHOT_DIR
// The page loads without console errors or failed requests; the job list
// pages past 200 jobs, sorts, filters and shows why queued jobs wait, all
// kept in the address; a job submitted through the API appears and changes
// state; a job's own address opens its page (facts, pods, timeline, Spark
// UI link) and its cancel button cancels it; back and forward move between
// views; the usage view takes its window and grouping from the address.
// Screenshots of each view go to SCREENSHOT_DIR.
'use strict';

const { chromium } = require('playwright-core');

const [base, shots] = process.argv.slice(2);
const job = (name, seconds, team) => JSON.stringify({
  name, labels: { team: team || 'web' },
  spec: { type: 'Python', sparkVersion: '3.5.1', mainApplicationFile: 'local:///opt/app.py', arguments: ['--day', '2026-12-07'],
          executor: { instances: 1 }, sparkConf: { 'spark.kubesim.durationSeconds': String(seconds) } },
});

async function call(method, path, body) {
  const res = await fetch(base + path, { method, headers: { 'Content-Type': 'application/json' }, body });
  if (res.status >= 300) throw new Error(method + ' ' + path + ': ' + res.status);
  return res.json();
}

const submit = async (name, seconds, team) => (await call('POST', '/api/v1/jobs', job(name, seconds, team))).id;
const stateOf = async (id) => (await call('GET', '/api/v1/jobs/' + id)).state;
const rows = (page) => page.$$eval('#job-table tbody tr', (trs) => trs.length);

function fail(msg) {
  console.error('FAIL: ' + msg);
  process.exitCode = 1;
}

function expect(what, ok) {
  if (!ok) throw new Error(what);
}

// Polls fn in the page until it holds. Not page.waitForFunction: that
// evaluates a string, which the dashboard's Content-Security-Policy forbids.
async function until(page, what, fn, arg, ms = 10000) {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 100)))
    if (await page.evaluate(fn, arg)) return;
  throw new Error('timed out waiting for ' + what);
}

(async () => {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push('console: ' + m.text()); });
  page.on('pageerror', (e) => problems.push('page: ' + e.message));
  page.on('response', (r) => { if (r.status() >= 400) problems.push('response: ' + r.status() + ' ' + r.url()); });
  try {
    // More jobs than a page, held in the queue by a cordon: the list shows
    // 200, why they wait, and the rest on demand.
    await call('POST', '/api/v1/clusters/web/cordon');
    for (let i = 0; i < 205; i += 41)
      await Promise.all(Array.from({ length: Math.min(41, 205 - i) }, (_, k) => submit('bulk-' + String(i + k).padStart(3, '0'), 1, 'bulk')));
    await page.goto(base + '/#/jobs?team=bulk');
    await until(page, '200 rows', () => document.querySelectorAll('#job-table tbody tr').length === 200);
    expect('the team filter comes from the address', (await page.inputValue('#f-team')) === 'bulk');
    await page.waitForSelector('#more:not([hidden])');
    await until(page, 'a wait reason', () => [...document.querySelectorAll('#job-table td.reason')].some((td) => td.textContent.includes('cordoned')));
    // Why a job waits changes without a change to the job: the open page
    // still follows it.
    await call('POST', '/api/v1/clusters/web/drain');
    await until(page, 'the new wait reason', () => [...document.querySelectorAll('#job-table td.reason')].some((td) => td.textContent.includes('draining')));
    await call('POST', '/api/v1/clusters/web/cordon');
    await page.click('#more');
    await until(page, '205 rows', () => document.querySelectorAll('#job-table tbody tr').length === 205);
    expect('no more pages after the last', await page.isHidden('#more'));
    await page.click('#job-table th[data-sort="name"]');
    expect('sorted by name', (await page.textContent('#job-table tbody tr td')).startsWith('bulk-000'));
    await page.click('#job-table th[data-sort="name"]');
    expect('sorted by name, descending', (await page.textContent('#job-table tbody tr td')).startsWith('bulk-204'));
    expect('the sort is in the address', (await page.evaluate(() => location.hash)) === '#/jobs?team=bulk&sort=-name');
    await page.screenshot({ path: shots + '/queued.png' });
    await call('POST', '/api/v1/clusters/web/uncordon');

    await page.fill('#f-team', '');
    const quick = await submit('quick-report', 1);
    await page.waitForSelector(`tr[data-id="${quick}"]`, { timeout: 10000 });
    // It runs to its end while the page polls.
    await page.waitForSelector(`tr[data-id="${quick}"] .state.SUCCEEDED`, { timeout: 30000 });
    const long = await submit('nightly-etl', 60);
    await page.waitForSelector(`tr[data-id="${long}"] .state.RUNNING`, { timeout: 30000 });
    await page.screenshot({ path: shots + '/jobs.png' });

    // A job's own address opens its page, from a fresh load.
    await page.goto('about:blank');
    await page.goto(base + '/#/jobs/' + long);
    await page.waitForSelector('#detail.on #d-events li', { timeout: 10000 });
    await until(page, 'the conf', () => document.querySelectorAll('#d-conf tbody tr').length > 5);
    await page.waitForSelector('#d-pods tr.pod', { timeout: 10000 });
    const facts = await page.textContent('#d-facts');
    expect('the job page shows user, labels and arguments: ' + facts,
      facts.includes('anonymous') && facts.includes('team=web') && facts.includes('2026-12-07'));
    expect('a running job links its Spark UI', (await page.textContent('#d-ui')) === 'Spark UI');
    await page.screenshot({ path: shots + '/job.png' });
    await page.click('#d-cancel');
    await page.waitForSelector('#d-summary .state.CANCELLED, #d-summary .state.CANCELLING', { timeout: 10000 });
    for (let i = 0; i < 100 && (await stateOf(long)) !== 'CANCELLED'; i++)
      await new Promise((r) => setTimeout(r, 100));
    if ((await stateOf(long)) !== 'CANCELLED') fail('the cancel button did not cancel the job');
    await page.waitForSelector('#d-summary .state.CANCELLED', { timeout: 10000 });

    // Back and forward between a filtered list and a job.
    await page.goto(base + '/#/jobs?state=SUCCEEDED');
    await page.waitForSelector(`tr[data-id="${quick}"]`, { timeout: 10000 });
    expect('only SUCCEEDED jobs', await page.$$eval('#job-table tbody .state', (s) => s.every((e) => e.textContent === 'SUCCEEDED')));
    await page.click(`tr[data-id="${quick}"]`);
    await page.waitForSelector('#detail.on', { timeout: 5000 });
    expect('the job has its address', (await page.evaluate(() => location.hash)) === '#/jobs/' + quick);
    await until(page, 'the History Server link', () => document.querySelector('#d-ui').textContent === 'History Server');
    await page.goBack();
    await page.waitForSelector('#jobs.on', { timeout: 5000 });
    expect('back: the filtered list again', (await page.inputValue('#f-state')) === 'SUCCEEDED' && (await rows(page)) > 0);
    await page.goForward();
    await until(page, 'forward: the job again',
      (id) => document.querySelector('#detail.on') && document.querySelector('#d-title').textContent.includes(id), quick);

    await page.click('nav a[data-tab="fleet"]');
    await page.waitForSelector('#pools .pool td.ok', { timeout: 10000 });
    await page.screenshot({ path: shots + '/fleet.png' });

    // Usage: its window and grouping are in the address, totals priced.
    await page.click('nav a[data-tab="usage"]');
    await page.waitForSelector('#usage-charts svg polyline', { timeout: 10000 });
    await page.selectOption('#u-window', '1h');
    await page.selectOption('#u-by', 'job');
    await page.waitForSelector(`#usage-totals a[href="#/jobs/${quick}"]`, { timeout: 10000 });
    expect('priced usage shows cost', (await page.textContent('#usage-totals thead')).includes('Cost'));
    expect('the usage view is in the address', (await page.evaluate(() => location.hash)) === '#/usage?window=1h&by=job');
    await page.screenshot({ path: shots + '/usage.png' });
    await page.goto(base + '/#/usage?window=7d&by=user');
    await until(page, 'usage by user', () => document.querySelector('#usage-totals thead th').textContent === 'user' &&
      document.querySelector('#usage-totals tbody').textContent.includes('anonymous'));
    expect('the window from the address', (await page.inputValue('#u-window')) === '7d');
  } catch (err) {
    fail(err.message);
    await page.screenshot({ path: shots + '/failure.png' }).catch(() => {});
  }
  for (const p of problems) fail(p);
  await browser.close();
})();
