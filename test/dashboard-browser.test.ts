// The dashboard page in a real browser (Debian's chromium driven by playwright-core) over a history
// made by real runs: the run list, a run's timeline and graph, a run appearing live, acknowledging an
// alert, the token flow, and an XSS corpus that must execute nothing. Screenshots go to
// .test-out/dashboard/ (gitignored). Skips, saying why, only when no browser can be had.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { startDashboard, type DashboardHandle } from '../src/index.js';
import { makeHistory, quickRuns, XSS } from './fixtures/dashboard/history.js';
import { rows, tempDir } from './fixtures/storage/tmp.js';

const CHROMIUM = process.env.WPIPE_CHROMIUM ?? '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];
const OUT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '.test-out', 'dashboard');

const skip = fs.existsSync(CHROMIUM) ? false : `no browser at ${CHROMIUM} (apt-get install chromium, or set WPIPE_CHROMIUM)`;
if (skip) console.log(`# dashboard browser tests skipped: ${skip}`);

const t = tempDir('wpipe-dashboard-browser-');
const file = t.file('history.db');
let ids: Awaited<ReturnType<typeof makeHistory>>;
let dash: DashboardHandle;
let browser: Browser;

before(async () => {
  if (skip) return;
  fs.mkdirSync(OUT, { recursive: true });
  ids = await makeHistory(file);
  dash = await startDashboard({ db: file, port: 0, pollMs: 50 });
  const { chromium } = await import('playwright-core');
  // launch() gives the browser a fresh, empty profile of its own (a temporary --user-data-dir, which
  // playwright refuses as an argument) and removes it at close.
  browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
});

after(async () => {
  await browser?.close();
  await dash?.close();
  t.cleanup();
});

/** A page that records dialogs, page errors and CSP violations. */
async function open(url: string): Promise<{ page: Page; dialogs: string[]; errors: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  // Generous: CI runs this beside the other suites on two cores.
  page.setDefaultTimeout(60_000);
  const dialogs: string[] = [];
  const errors: string[] = [];
  page.on('dialog', (d) => { dialogs.push(d.message()); void d.dismiss(); });
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.goto(url);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  return { page, dialogs, errors };
}

test('the run list, then a run with its timeline, graph and steps', { skip, timeout: 180_000 }, async () => {
  const { page, errors } = await open(dash.url);
  try {
    const listed = await page.$$eval('#runs-body tr.run-row', (trs) => trs.map((tr) => (tr as HTMLElement).dataset.run));
    assert.deepEqual(new Set(listed), new Set([ids.ok, ids.failed, ids.hostile]));
    assert.equal(await page.textContent('#card-runs .card-value'), '3');

    await page.click(`tr[data-run="${ids.ok}"]`);
    await page.waitForSelector('#timeline svg.gantt');
    assert.equal(await page.locator('#timeline g.gantt-row').count(), 12, 'a bar per step row');
    const flakyMeta = await page.locator('#timeline g.gantt-row', { hasText: 'flaky' }).locator('.gantt-meta').textContent();
    assert.match(flakyMeta ?? '', /2 attempts · inline/, 'retries and where it ran');
    const labels = await page.$$eval('#graph .edge-label', (els) => els.map((e) => e.textContent));
    assert.deepEqual(labels, ['branch taken', 'iteration 1', 'iteration 2', 'iteration 3', 'parallel', 'parallel']);
    assert.equal(await page.locator('#graph ul.tree > li').count(), 6, 'six top-level steps');
    assert.match(page.url(), /#run=d-1$/, 'deep link');
    await page.screenshot({ path: path.join(OUT, 'run-detail.png'), fullPage: true });

    // Filters: status, then search.
    await page.selectOption('#f-status', 'error');
    await page.waitForFunction(() => document.querySelectorAll('#runs-body tr.run-row').length === 2);
    await page.selectOption('#f-status', '');
    await page.fill('#f-q', 'disk full');
    await page.click('#filters button[type=submit]');
    await page.waitForFunction(() => document.querySelectorAll('#runs-body tr.run-row').length === 1);
    assert.equal(await page.getAttribute('#runs-body tr.run-row', 'data-run'), ids.failed);

    // A deep link opens the run on load.
    const other = await open(`${dash.url}/#run=${ids.failed}`);
    await other.page.waitForSelector('#run-error');
    assert.match((await other.page.textContent('#run-error')) ?? '', /save failed: disk full/);
    await other.page.close();
    assert.deepEqual(errors, []);
  } finally {
    await page.close();
  }
});

test('a run that finishes while the page is open appears without a reload', { skip, timeout: 180_000 }, async () => {
  const { page, errors } = await open(dash.url);
  try {
    await page.waitForSelector('#live.on');
    const before = await page.textContent('#card-runs .card-value');
    await quickRuns(file, 'live-pipeline', 'live', 1);
    await page.waitForSelector('tr[data-run="live-0"]', { timeout: 60_000 });
    assert.equal(await page.locator('tr[data-run="live-0"] .badge').textContent(), 'completed');
    await page.waitForFunction((b) => document.querySelector('#card-runs .card-value')?.textContent !== b, before, { timeout: 60_000 });
    await page.screenshot({ path: path.join(OUT, 'live.png') });
    assert.deepEqual(errors, []);
  } finally {
    await page.close();
  }
});

test('acknowledging an alert persists it', { skip, timeout: 180_000 }, async () => {
  const { page, errors } = await open(dash.url);
  try {
    await page.click('#tabs button[data-tab="alerts"]');
    await page.waitForSelector('#alerts-table button.ack');
    const id = Number(await page.getAttribute('#alerts-table button.ack', 'data-id'));
    assert.equal(rows(file, 'SELECT acknowledged FROM alerts_fired WHERE id = ?', id)[0]!.acknowledged, 0);
    await page.click(`#alerts-table button.ack[data-id="${id}"]`);
    await page.waitForSelector(`#alerts-table button.ack[data-id="${id}"]`, { state: 'detached' });
    assert.equal(rows(file, 'SELECT acknowledged FROM alerts_fired WHERE id = ?', id)[0]!.acknowledged, 1, 'written to SQLite');
    await page.screenshot({ path: path.join(OUT, 'alerts.png') });
    await page.reload();
    await page.waitForSelector('body[data-ready="true"]');
    await page.click('#tabs button[data-tab="alerts"]');
    await page.waitForSelector('#alerts-table tbody tr');
    assert.equal(await page.locator(`#alerts-table button.ack[data-id="${id}"]`).count(), 0, 'still acknowledged after a reload');
    assert.deepEqual(errors, []);
  } finally {
    await page.close();
  }
});

test('the XSS corpus is shown as text and executes nothing, on every tab', { skip, timeout: 180_000 }, async () => {
  const { page, dialogs, errors } = await open(dash.url);
  try {
    const hostileRow = page.locator('#runs-body tr.run-row').filter({ hasText: 'hostile' });
    assert.equal(await hostileRow.locator('td.name').textContent(), `hostile ${XSS[0]}`, 'the name shows literally');
    await hostileRow.click();
    await page.waitForSelector('#run-error');
    assert.equal(await page.textContent('#run-title'), `hostile ${XSS[0]}`);
    assert.equal(await page.textContent('#run-id'), ids.hostile);
    const error = (await page.textContent('#run-error')) ?? '';
    for (const x of [XSS[1], XSS[4], XSS[5]]) assert.ok(error.includes(x), `error shown as text: ${x}`);
    await page.locator('details.step').last().click();
    for (const tab of ['alerts', 'events', 'analysis', 'trends', 'data']) {
      await page.click(`#tabs button[data-tab="${tab}"]`);
      await page.waitForTimeout(200);
    }
    for (const table of ['pipelines', 'steps', 'events', 'alerts_fired']) {
      await page.selectOption('#data-table', table);
      await page.waitForSelector('#data-grid tbody tr');
    }
    await page.click('#tabs button[data-tab="runs"]');
    await page.screenshot({ path: path.join(OUT, 'xss.png'), fullPage: true });
    // Give any deferred payload (onerror of an image, an iframe's script) time to run.
    await page.waitForTimeout(300);
    assert.equal(await page.evaluate(() => (window as unknown as { __xss?: unknown }).__xss), undefined, 'no payload ran');
    assert.deepEqual(dialogs, [], 'no alert() dialog');
    const injected = await page.evaluate(() => ({
      img: document.querySelectorAll('img').length,
      iframe: document.querySelectorAll('iframe').length,
      scripts: [...document.querySelectorAll('script')].map((s) => s.getAttribute('src')),
      handlers: [...document.querySelectorAll('*')].filter((el) => [...el.attributes].some((a) => a.name.startsWith('on'))).length,
      links: [...document.querySelectorAll('a[href]')].map((a) => a.getAttribute('href')),
    }));
    assert.deepEqual(injected, { img: 0, iframe: 0, scripts: ['/app.js', '/vendor/uPlot.iife.min.js'], handlers: 0, links: [] });
    assert.deepEqual(errors, []);
  } finally {
    await page.close();
  }
});

test('with a token the page is opened as /?token=…, and without it the API says so', { skip, timeout: 180_000 }, async () => {
  const token = 'browser-test-token';
  const guarded = await startDashboard({ db: file, port: 0, token, pollMs: 50 });
  try {
    const { page } = await open(`${guarded.url}/?token=${token}`);
    try {
      assert.equal(new URL(page.url()).search, '', 'the token leaves the address bar');
      assert.ok(await page.locator('#runs-body tr.run-row').count() >= 3);
      await page.waitForSelector('#live.on', { timeout: 60_000 });
    } finally {
      await page.close();
    }
    const bare = await browser.newPage();
    bare.setDefaultTimeout(60_000);
    try {
      await bare.goto(guarded.url);
      await bare.waitForSelector('#banner:not([hidden])');
      assert.match((await bare.textContent('#banner')) ?? '', /needs its token/);
    } finally {
      await bare.close();
    }
  } finally {
    await guarded.close();
  }
});

test('a run with thousands of step rows draws the first 500 and says how many more', { skip, timeout: 180_000 }, async () => {
  const { Pipeline, For } = await import('../src/index.js');
  const f2 = t.file('big-loop.db');
  const pipe = new Pipeline({ pipelineName: 'loop', trackingDb: f2 }).setSteps([
    new For({ iterations: 1200, maxIterations: 2000, steps: [[(c: Record<string, unknown>) => ({ i: Number(c.i ?? 0) + 1 }), 'tick']] }),
  ]);
  await pipe.run({}, { runId: 'loop-1' });
  await pipe.close();
  const d = await startDashboard({ db: f2, port: 0 });
  try {
    const { page, errors } = await open(`${d.url}/#run=loop-1`);
    try {
      await page.waitForSelector('#timeline svg.gantt');
      assert.equal(await page.locator('#timeline g.gantt-row').count(), 500);
      assert.match((await page.textContent('#timeline')) ?? '', /… and 701 more steps/);
      assert.equal(await page.locator('#graph li.node-item').count(), 500);
      assert.deepEqual(errors, []);
    } finally {
      await page.close();
    }
  } finally {
    await d.close();
  }
});

test('an open running run follows its steps and its end without a reload', { skip, timeout: 180_000 }, async () => {
  const { Pipeline } = await import('../src/index.js');
  let release!: () => void;
  const gate = new Promise<void>((r) => { release = r; });
  let reached!: () => void;
  const atGate = new Promise<void>((r) => { reached = r; });
  const pipe = new Pipeline({ pipelineName: 'gated', trackingDb: file }).setSteps([
    [() => ({ a: 1 }), 'before'],
    [async () => { reached(); await gate; return { b: 1 }; }, 'waiting'],
    [() => ({ c: 1 }), 'after'],
  ]);
  const run = pipe.run({}, { runId: 'gated-1' });
  const { page, errors } = await open(dash.url);
  try {
    await atGate;
    await page.waitForSelector('tr[data-run="gated-1"]');
    await page.click('tr[data-run="gated-1"]');
    await page.waitForSelector('#timeline g.gantt-row[data-status="running"]');
    assert.equal(await page.locator('.detail-head .badge').first().textContent(), 'running');
    release();
    await run;
    await page.waitForFunction(() => document.querySelector('.detail-head .badge')?.textContent === 'completed');
    assert.deepEqual(await page.$$eval('#timeline g.gantt-row', (gs) => gs.map((g) => g.getAttribute('data-status'))), ['completed', 'completed', 'completed']);
    assert.deepEqual(errors, []);
  } finally {
    release();
    await run.catch(() => undefined);
    await pipe.close();
    await page.close();
  }
});

test('resource charts (uPlot, served from the package) when the run recorded system metrics; trends chart', { skip, timeout: 180_000 }, async () => {
  const { Pipeline } = await import('../src/index.js');
  const f3 = t.file('metrics.db');
  const pipe = new Pipeline({ pipelineName: 'metered', trackingDb: f3, collectSystemMetrics: true }).setSteps([
    [() => { const until = Date.now() + 50; while (Date.now() < until) { /* busy */ } return { a: 1 }; }, 'burn'],
    [() => ({ b: 1 }), 'light'],
  ]);
  await pipe.run({}, { runId: 'm-1' });
  await pipe.close();
  const d = await startDashboard({ db: f3, port: 0 });
  try {
    const { page, errors } = await open(`${d.url}/#run=m-1`);
    try {
      await page.waitForSelector('#metrics-chart canvas');
      assert.ok(await page.locator('#metrics-chart .u-legend').count() >= 1, 'a uPlot chart with its legend');
      assert.match((await page.locator('#metrics-chart').locator('xpath=..').textContent()) ?? '', /burn/);
      await page.click('#tabs button[data-tab="trends"]');
      await page.waitForSelector('#trend-chart canvas');
      assert.equal(await page.locator('#trend-table tbody tr').count(), 1, 'one day with runs');
      await page.screenshot({ path: path.join(OUT, 'trends.png') });
      assert.deepEqual(errors, []);
    } finally {
      await page.close();
    }
  } finally {
    await d.close();
  }
});
