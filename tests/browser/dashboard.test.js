// Drives the dashboard in headless Chromium (Debian's /usr/bin/chromium)
// against a running gateway with a kubesim cluster:
//   node dashboard.test.js BASE_URL SCREENSHOT_DIR
// The page loads without console errors, a job submitted through the API
// appears and changes state, the job's page shows its timeline, and its
// cancel button cancels it. Screenshots of each step go to SCREENSHOT_DIR.
'use strict';

const { chromium } = require('playwright-core');

const [base, shots] = process.argv.slice(2);
const job = (name, seconds) => JSON.stringify({
  name, labels: { team: 'web' },
  spec: { type: 'Python', sparkVersion: '3.5.1', mainApplicationFile: 'local:///opt/app.py',
          executor: { instances: 1 }, sparkConf: { 'spark.kubesim.durationSeconds': String(seconds) } },
});

async function submit(name, seconds) {
  const res = await fetch(base + '/api/v1/jobs', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: job(name, seconds) });
  if (res.status !== 201) throw new Error('submit: ' + res.status);
  return (await res.json()).id;
}

async function stateOf(id) {
  return (await (await fetch(base + '/api/v1/jobs/' + id)).json()).state;
}

function fail(msg) {
  console.error('FAIL: ' + msg);
  process.exitCode = 1;
}

(async () => {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push('console: ' + m.text()); });
  page.on('pageerror', (e) => problems.push('page: ' + e.message));
  page.on('response', (r) => { if (r.status() >= 400) problems.push('response: ' + r.status() + ' ' + r.url()); });
  try {
    const quick = await submit('quick-report', 1);
    await page.goto(base + '/');
    await page.waitForSelector(`tr[data-id="${quick}"]`, { timeout: 10000 });
    // It runs to its end while the page polls.
    await page.waitForSelector(`tr[data-id="${quick}"] .state.SUCCEEDED`, { timeout: 20000 });

    const long = await submit('nightly-etl', 60);
    await page.waitForSelector(`tr[data-id="${long}"] .state.RUNNING`, { timeout: 20000 });
    await page.screenshot({ path: shots + '/jobs.png' });

    await page.click(`tr[data-id="${long}"]`);
    await page.waitForSelector('#detail.on #d-events li', { timeout: 10000 });
    await page.waitForFunction(() => document.querySelectorAll('#d-conf tbody tr').length > 5, null, { timeout: 10000 });
    await page.screenshot({ path: shots + '/job.png' });
    await page.click('#d-cancel');
    await page.waitForSelector('#d-summary .state.CANCELLED, #d-summary .state.CANCELLING', { timeout: 10000 });
    for (let i = 0; i < 100 && (await stateOf(long)) !== 'CANCELLED'; i++)
      await new Promise((r) => setTimeout(r, 100));
    if ((await stateOf(long)) !== 'CANCELLED') fail('the cancel button did not cancel the job');
    await page.waitForSelector('#d-summary .state.CANCELLED', { timeout: 10000 });

    await page.click('nav button[data-tab="fleet"]');
    await page.waitForSelector('#pools .pool td.ok', { timeout: 10000 });
    await page.screenshot({ path: shots + '/fleet.png' });
    await page.click('nav button[data-tab="usage"]');
    await page.waitForSelector('#usage-charts svg polyline', { timeout: 10000 });
    await page.screenshot({ path: shots + '/usage.png' });
  } catch (err) {
    fail(err.message);
    await page.screenshot({ path: shots + '/failure.png' }).catch(() => {});
  }
  for (const p of problems) fail(p);
  await browser.close();
})();
