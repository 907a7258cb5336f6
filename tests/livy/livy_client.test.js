// The gateway's Livy batch API driven by a published Livy client (npm
// livy-client), unchanged but for the server's address and path prefix.
// Usage: node livy_client.test.js http://127.0.0.1:PORT /livy
// Exits 0 when every step held; prints the failed step otherwise.
'use strict';

const assert = require('assert');
const LivyClient = require('livy-client');

const [base, prefix] = process.argv.slice(2);
const url = new URL(base);

// Resolves with the batch's state once it is one of `states`.
function until(session, states, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no state in ${states} after ${ms} ms`)), ms);
    session.on('update', (o) => {
      if (states.includes(o.state)) {
        clearTimeout(timer);
        resolve(o.state);
      }
    });
  });
}

async function main() {
  const livy = new LivyClient({
    host: url.hostname, port: url.port, pathPrefix: prefix, updateInterval: 300,
  });
  const batches = livy.Batch();

  // A batch that runs to its end.
  const ok = await batches.createSession({
    file: 'local:///opt/spark/examples/src/main/python/pi.py',
    args: ['10'],
    name: 'pi from livy-client',
    conf: { 'spark.kubesim.durationSeconds': '1' },
  });
  assert.strictEqual(typeof ok.id, 'number', 'a batch id is a number');
  assert.strictEqual(await until(ok, ['success', 'dead', 'killed'], 30000), 'success');
  const state = await ok.state();
  assert.deepStrictEqual(state, { id: ok.id, state: 'success' });
  const log = await ok.log({ from: 0, size: 3 });
  assert.strictEqual(log.id, ok.id);
  assert.strictEqual(log.from, 0);
  assert.ok(log.total >= log.log.length && log.log.length === 3, JSON.stringify(log));
  ok.cleanup();

  // A batch killed while it runs.
  const long = await batches.createSession({
    file: 'local:///opt/spark/examples/jars/spark-examples.jar',
    className: 'org.apache.spark.examples.SparkPi',
    conf: { 'spark.kubesim.durationSeconds': '60' },
  });
  assert.strictEqual(await until(long, ['running'], 30000), 'running');
  assert.deepStrictEqual(await long.kill(), { msg: 'deleted' });
  assert.ok(['shutting_down', 'killed'].includes((await long.state()).state));
  long.cleanup();

  // Both are listed, with Livy's paging fields.
  const listed = await batches.sessions({ from: 0, size: 100 });
  const ids = listed.map((s) => s.id);
  assert.ok(ids.includes(ok.id) && ids.includes(long.id), `listed ${ids}`);
  listed.forEach((s) => s.cleanup());
  batches.cleanup();
  livy.cleanup();
}

main().then(() => {
  console.log('livy-client: all steps passed');
  process.exit(0);
}, (err) => {
  console.error('livy-client:', err && err.stack ? err.stack : err);
  process.exit(1);
});
