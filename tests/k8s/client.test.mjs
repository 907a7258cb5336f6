// The official JavaScript client (@kubernetes/client-node, pinned) against
// kubesim: typed list and create, a watch from a resourceVersion that the
// server drops and the client resumes from the last one seen, a resume
// from a compacted version answered 410 and recovered by a relist, and an
// informer (list + watch, relisting on 410) whose cache ends equal to the
// server's list with each pod added once.
// usage: node client.test.mjs BASE_URL NAMESPACE   (kubesim started with
// --drop-watch-after and --compact-every); exits non-zero on a failure.
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';

const [base, namespace] = process.argv.slice(2);
const kc = new k8s.KubeConfig();
kc.loadFromOptions({
  clusters: [{ name: 'sim', server: base, skipTLSVerify: true }],
  users: [{ name: 'u' }],
  contexts: [{ name: 'sim', cluster: 'sim', user: 'u', namespace }],
  currentContext: 'sim',
});
const core = kc.makeApiClient(k8s.CoreV1Api);
const path = `/api/v1/namespaces/${namespace}/pods`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function pod(name) {
  return {
    metadata: { name, labels: { test: 'client-node' } },
    spec: { containers: [{ name: 'main', image: 'busybox:1.36' }], restartPolicy: 'Never' },
  };
}

async function create(name) {
  const made = await core.createNamespacedPod({ namespace, body: pod(name) });
  assert.equal(made.metadata.name, name);
  return made;
}

// Until cond() holds, within ms.
async function until(cond, ms, what) {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(25))
    if (cond()) return;
  assert.fail(`timed out waiting for ${what}`);
}

// One watch from rv: its events, the last resourceVersion seen, and
// whether the server ended it.
function watchFrom(rv) {
  const w = { events: [], lastRV: rv, ended: false, error: null };
  w.ready = new k8s.Watch(kc).watch(path, { resourceVersion: rv, allowWatchBookmarks: true },
    (type, obj) => {
      w.events.push({ type, name: obj?.metadata?.name, code: obj?.code });
      if (obj?.metadata?.resourceVersion && type !== 'ERROR') w.lastRV = obj.metadata.resourceVersion;
    },
    (err) => { w.ended = true; w.error = err; });
  return w;
}

const added = (w, name) => w.events.filter((e) => e.type === 'ADDED' && e.name === name).length;

// A list, then a watch from its version sees what is created after it.
const list = await core.listNamespacedPod({ namespace });
assert.ok(list.metadata.resourceVersion, 'a list has a resourceVersion');
const w1 = watchFrom(list.metadata.resourceVersion);
await w1.ready;
await create('cn-one');
await until(() => added(w1, 'cn-one') === 1, 5000, 'ADDED cn-one');
// The server drops the watch; what happens meanwhile is not lost.
await until(() => w1.ended, 10000, 'the server to drop the watch');
await create('cn-two');
const w2 = watchFrom(w1.lastRV);
await w2.ready;
// Unless a compaction (every second here) came between the drop and the
// resume: then the answer is 410, and a relist has what was missed.
const expired = (w) => w.events.some((e) => e.type === 'ERROR' && e.code === 410) || w.error?.statusCode === 410;
await until(() => added(w2, 'cn-two') === 1 || expired(w2), 5000, 'ADDED cn-two (or 410) after resuming');
if (expired(w2)) {
  const again = (await core.listNamespacedPod({ namespace })).items.map((p) => p.metadata.name);
  assert.ok(again.includes('cn-two'), 'the relist after 410 has cn-two');
}
assert.equal(added(w2, 'cn-one'), 0, 'a resumed watch repeats nothing');
(await w2.ready).abort();

// A version the server has compacted away: ERROR 410, then a relist.
const stale = w2.lastRV;
await create('cn-three');
await sleep(1500);
const w3 = watchFrom(stale);
await w3.ready;
await until(() => expired(w3), 5000, 'a 410 for a compacted resourceVersion');
(await w3.ready).abort();
const relist = await core.listNamespacedPod({ namespace });
const names = relist.items.map((p) => p.metadata.name);
for (const n of ['cn-one', 'cn-two', 'cn-three']) assert.ok(names.includes(n), `relist has ${n}`);

// An informer over drops and compactions: its cache ends as the server's.
const adds = new Map();
const informer = k8s.makeInformer(kc, path, () => core.listNamespacedPod({ namespace }));
informer.on('add', (p) => adds.set(p.metadata.name, (adds.get(p.metadata.name) || 0) + 1));
informer.on('error', () => setTimeout(() => informer.start(), 200)); // as its docs advise
await informer.start();
for (let i = 0; i < 6; i++) {
  await create(`cn-inf-${i}`);
  await sleep(700);
}
const want = (await core.listNamespacedPod({ namespace })).items.map((p) => p.metadata.name).sort();
await until(() => informer.list(namespace).map((p) => p.metadata.name).sort().join() === want.join(), 10000,
  'the informer cache to match the server list');
for (const n of want) assert.equal(adds.get(n), 1, `${n} added once`);
await informer.stop();
console.log(JSON.stringify({ ok: true, pods: want.length, resumedFrom: w1.lastRV }));
process.exit(0);
