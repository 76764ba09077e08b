// collectSystemMetrics: a system_metrics row per run and per top-level step, from the host sampler,
// returned by the exporter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Pipeline, PipelineExporter, type Context } from '../src/index.js';
import { tempDir } from './fixtures/storage/tmp.js';

test('collectSystemMetrics records peak and average RSS and CPU per run and per top-level step', { timeout: 30_000 }, async () => {
  const t = tempDir();
  try {
    const file = t.file('metrics.db');
    const pipe = new Pipeline({ pipelineName: 'metered', trackingDb: file, collectSystemMetrics: true }).setSteps([
      [() => {
        // 300 ms of CPU with 100 MiB made and freed inside it: the sampler sees the peak while the loop is blocked.
        const until = Date.now() + 300;
        let buf: Buffer | undefined = Buffer.alloc(100 * 2 ** 20, 1);
        while (Date.now() < until) { /* busy */ }
        buf = undefined;
        return { done: buf === undefined };
      }, 'burn'],
      [() => ({ light: true }), 'light'],
    ]);
    await pipe.run({}, { runId: 'm-1' });
    await pipe.close();
    const exporter = new PipelineExporter(file);
    const rows = JSON.parse(exporter.exportMetrics({ format: 'json', pipelineId: 'm-1' })) as Record<string, number | string | null>[];
    exporter.close();
    const run = rows.find((r) => r.scope === 'run')!;
    const steps = rows.filter((r) => r.scope === 'step').sort((a, b) => Number(a.step_order) - Number(b.step_order));
    assert.ok(run, JSON.stringify(rows));
    assert.equal(steps.length, 2);
    const burn = steps[0]!;
    assert.ok(Number(burn.samples) >= 3, `samples during the blocked step: ${String(burn.samples)}`);
    assert.ok(Number(burn.peak_rss_mb) - Number(burn.rss_mb) >= 50 || Number(burn.peak_rss_mb) >= 100, `the 100 MiB peak was seen: ${JSON.stringify(burn)}`);
    assert.ok(Number(burn.cpu_percent) > 10, `a busy step (a shared CPU can halve it): ${String(burn.cpu_percent)}% CPU`);
    // The run's window shares the sampler's samples; a step's own end reading can add a point the run's window has not.
    assert.ok(Number(run.peak_rss_mb) >= 0.8 * Number(burn.peak_rss_mb), `the run saw the step's peak: ${String(run.peak_rss_mb)} / ${String(burn.peak_rss_mb)}`);
    assert.ok(['native', 'js'].includes(String(run.sampler)));
    assert.ok(Number(run.duration_ms) >= 300);
  } finally {
    t.cleanup();
  }
});
