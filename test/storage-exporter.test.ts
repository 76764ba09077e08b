import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { PipelineExporter, csvField, toCsv } from '../src/observe/exporter.js';
import { WpipeError } from '../src/errors.js';
import { tempDir } from './fixtures/storage/tmp.js';
import { seedHistory, SEEDED } from './fixtures/storage/history.js';

/** A strict RFC 4180 reader: fields quoted or not, "" inside quotes, CRLF record ends. */
function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let field = '';
  let record: string[] = [];
  let i = 0;
  let quoted = false;
  while (i < text.length) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i += 2; continue; }
      if (c === '"') { quoted = false; i++; continue; }
      field += c; i++; continue;
    }
    if (c === '"') {
      assert.equal(field, '', 'a quote may only open a field');
      quoted = true; i++; continue;
    }
    if (c === ',') { record.push(field); field = ''; i++; continue; }
    if (c === '\r') {
      assert.equal(text[i + 1], '\n', 'records end with CRLF');
      record.push(field); records.push(record); record = []; field = ''; i += 2; continue;
    }
    assert.notEqual(c, '\n', 'a bare LF outside quotes is not RFC 4180');
    field += c; i++;
  }
  assert.equal(quoted, false);
  assert.equal(field, '');
  assert.equal(record.length, 0, 'the last record ends with CRLF');
  return records;
}

const t = tempDir();
const file = t.file('x.db');
let exporter: PipelineExporter;
before(() => {
  seedHistory(file);
  exporter = new PipelineExporter(file);
});
after(() => {
  exporter.close();
  t.cleanup();
});

test('csvField quotes commas, quotes, CR and LF and doubles embedded quotes', () => {
  assert.equal(csvField('plain'), 'plain');
  assert.equal(csvField('a,b'), '"a,b"');
  assert.equal(csvField('say "hi"'), '"say ""hi"""');
  assert.equal(csvField('line1\nline2'), '"line1\nline2"');
  assert.equal(csvField('cr\rhere'), '"cr\rhere"');
  assert.equal(csvField(null), '');
  assert.equal(csvField(undefined), '');
  assert.equal(csvField(1.5), '1.5');
  assert.equal(csvField({ a: 'x,y' }), '"{""a"":""x,y""}"');
  assert.equal(toCsv(['a', 'b'], []), 'a,b\r\n');
});

test('pipeline logs as JSON: every run, newest first, JSON columns nested', () => {
  const data = JSON.parse(exporter.exportPipelineLogs({ format: 'json' })) as Record<string, unknown>[];
  assert.equal(data.length, SEEDED.length);
  assert.deepEqual(data.map((r) => r.id), ['b2', 'b1', 'a4', 'a3', 'a2', 'a1']);
  assert.deepEqual(Object.keys(data[0]!).slice(0, 14), ['id', 'name', 'worker_id', 'worker_name', 'status', 'started_at', 'completed_at',
    'total_duration_ms', 'input_data', 'output_data', 'error_message', 'error_step', 'parent_pipeline_id', 'yaml_path']);
  const a3 = data.find((r) => r.id === 'a3')!;
  assert.equal(a3.status, 'error', 'a failure is exported as a failure');
  assert.equal(a3.error_message, 'bad row, "7"');
  assert.deepEqual(a3.input_data, { note: 'line1\nline2, "quoted"' });
  assert.equal(exporter.exportPipelineLogs({ exportFormat: 'json', pipelineId: 'a1' }).includes('"a2"'), false);
});

test('pipeline logs as RFC 4180 CSV: commas, quotes and newlines survive a strict parse', () => {
  const text = exporter.exportPipelineLogs({ format: 'csv' });
  const [header, ...records] = parseCsv(text);
  assert.equal(records.length, SEEDED.length);
  for (const r of records) assert.equal(r.length, header!.length, 'no field was split by a comma');
  const col = (name: string) => header!.indexOf(name);
  const b1 = records.find((r) => r[col('id')] === 'b1')!;
  assert.equal(b1[col('name')], 'billing, "EU"');
  const a3 = records.find((r) => r[col('id')] === 'a3')!;
  assert.equal(a3[col('error_message')], 'bad row, "7"');
  assert.deepEqual(JSON.parse(a3[col('input_data')]!), { note: 'line1\nline2, "quoted"' });
  assert.equal(a3[col('parent_pipeline_id')], '', 'NULL is an empty field');
  const one = parseCsv(exporter.exportPipelineLogs({ format: 'csv', pipelineId: 'a3' }));
  assert.equal(one.length, 2);
  const none = exporter.exportPipelineLogs({ format: 'csv', pipelineId: 'ghost' });
  assert.equal(parseCsv(none).length, 1, 'no rows: the header alone');
});

test('metrics as JSON and CSV, filtered by run', () => {
  const all = JSON.parse(exporter.exportMetrics()) as Record<string, unknown>[];
  assert.equal(all.length, 2);
  const one = JSON.parse(exporter.exportMetrics({ pipelineId: 'a1' })) as Record<string, unknown>[];
  assert.deepEqual(one.map((m) => [m.pipeline_id, m.cpu_percent, m.rss_mb]), [['a1', 12.5, 80]]);
  const [header, ...rows] = parseCsv(exporter.exportMetrics({ format: 'csv' }));
  assert.equal(header![0], 'id');
  assert.equal(rows.length, 2);
});

test('statistics keep the original keys and add percentiles; CSV too', () => {
  const s = JSON.parse(exporter.exportStatistics({ format: 'json' })) as Record<string, unknown>;
  assert.equal(s.total_executions, 6);
  assert.equal(s.successful_executions, 3);
  assert.equal(s.failed_executions, 1);
  assert.equal(s.success_rate_percent, 60);
  assert.equal(s.average_execution_time_seconds, 0.4);
  assert.equal(s.p50_duration_ms, 300);
  assert.equal(s.p95_duration_ms, 1000);
  assert.ok(typeof s.exported_at === 'string');
  const one = JSON.parse(exporter.exportStatistics({ pipelineId: 'a2' })) as Record<string, unknown>;
  assert.deepEqual([one.total_executions, one.successful_executions, one.success_rate_percent], [1, 1, 100]);
  const [header, row] = parseCsv(exporter.exportStatistics({ format: 'csv' }));
  assert.equal(row![header!.indexOf('total_executions')], '6');
});

test('outputPath: written atomically, the path is returned, no temp file left', () => {
  const out = t.file('out/logs.csv');
  fs.mkdirSync(t.file('out'));
  fs.writeFileSync(out, 'old content');
  assert.equal(exporter.exportPipelineLogs({ format: 'csv', outputPath: out }), out);
  assert.equal(fs.readFileSync(out, 'utf8'), exporter.exportPipelineLogs({ format: 'csv' }));
  assert.deepEqual(fs.readdirSync(t.file('out')), ['logs.csv']);
  const stats = t.file('out/stats.json');
  assert.equal(exporter.exportStatistics({ outputPath: stats }), stats);
  assert.equal(JSON.parse(fs.readFileSync(stats, 'utf8')).total_executions, 6);
  assert.throws(() => exporter.exportMetrics({ outputPath: t.file('no/such/dir/m.json') }), /ENOENT/);
});

test('an unknown format is WPIPE_ERR_EXPORT_FORMAT listing the valid ones; bad options are TypeErrors', () => {
  for (const call of [
    () => exporter.exportPipelineLogs({ format: 'xml' as never }),
    () => exporter.exportMetrics({ exportFormat: 'yaml' as never }),
    () => exporter.exportStatistics({ format: 'CSV' as never }),
  ]) {
    assert.throws(call, (e: unknown) => {
      assert.ok(e instanceof WpipeError);
      assert.equal(e.code, 'WPIPE_ERR_EXPORT_FORMAT');
      assert.match(e.message, /'json', 'csv'/);
      return true;
    });
  }
  assert.throws(() => exporter.exportPipelineLogs({ fromat: 'csv' } as never), /did you mean format/);
  assert.throws(() => exporter.exportPipelineLogs({ format: 'json', exportFormat: 'csv' }), TypeError);
  assert.throws(() => exporter.exportPipelineLogs({ pipelineId: 7 as never }), TypeError);
});

test('a database that does not exist is an error (and is not created)', () => {
  const missing = t.file('nope.db');
  const e = new PipelineExporter(missing);
  assert.throws(() => e.exportStatistics(), (err: unknown) => err instanceof WpipeError && err.code === 'WPIPE_ERR_STORAGE');
  assert.equal(fs.existsSync(missing), false);
  assert.throws(() => new PipelineExporter(''), TypeError);
});
