#!/usr/bin/env node
// Checks Kubernetes objects against the upstream schemas vendored in
// schemas/ (see schemas/SOURCES.md), as an API server with
// fieldValidation=Strict would: unknown fields are errors.
//
//   node tests/k8s/validate.js [--kind NAME] FILE.json|-
//
// The schema is the one whose x-kubernetes-group-version-kind matches the
// object's apiVersion and kind (SparkApplication, PodGroup: their CRDs');
// --kind names one instead, by definition name (io.k8s.api.core.v1.PodSpec)
// or by kind for pod templates and other kindless fragments.
// Prints OK and exits 0, or one error a line and exits 1; 2 on usage.
'use strict';

const fs = require('fs');
const path = require('path');
const Ajv = require('ajv');
const addFormats = require('ajv-formats');

const SCHEMAS = path.join(__dirname, 'schemas');
const OPENAPI_DOCS = ['k8s-api-v1-openapi.json', 'k8s-apps-rbac-v1-openapi.json', 'k8s-scheduling-v1-openapi.json'];
// Custom resources, by the --kind alias too.
const CRDS = [
  { alias: 'sparkapp', apiVersion: 'sparkoperator.k8s.io/v1beta2', kind: 'SparkApplication',
    file: 'sparkapplication-v1beta2.schema.json' },
  { alias: 'podgroup', apiVersion: 'scheduling.volcano.sh/v1beta1', kind: 'PodGroup',
    file: 'podgroup-v1beta1.schema.json' },
];
const ROOT_ID = 'urn:sparkgw:k8s-schemas';

function fail(code, msg) {
  process.stderr.write(`validate.js: ${msg}\n`);
  process.exit(code);
}

function readJSON(file) {
  try {
    return JSON.parse(fs.readFileSync(file === '-' ? 0 : file, 'utf8'));
  } catch (e) {
    return fail(2, `${file}: ${e.message}`);
  }
}

// Strict field validation: an object schema that lists its properties and
// says nothing of others admits no others, unless Kubernetes marks it as
// preserving unknown fields.
function closeObjects(node) {
  if (Array.isArray(node)) {
    node.forEach(closeObjects);
  } else if (node && typeof node === 'object') {
    for (const [key, value] of Object.entries(node))
      if (key !== 'default' && key !== 'enum' && key !== 'example') closeObjects(value);
    if (node.properties && !('additionalProperties' in node) &&
        node['x-kubernetes-preserve-unknown-fields'] !== true)
      node.additionalProperties = false;
  }
  return node;
}

// All the OpenAPI documents' components in one schema's definitions, with
// their references rewritten to point there.
function loadDefinitions() {
  const definitions = {};
  for (const file of OPENAPI_DOCS)
    Object.assign(definitions, readJSON(path.join(SCHEMAS, file)).components.schemas);
  const text = JSON.stringify(definitions).split('"#/components/schemas/').join(`"${ROOT_ID}#/definitions/`);
  return closeObjects(JSON.parse(text));
}

function gvkOf(definition) {
  const g = (definition['x-kubernetes-group-version-kind'] || [])[0];
  return g && { apiVersion: g.group ? `${g.group}/${g.version}` : g.version, kind: g.kind };
}

function main() {
  const args = process.argv.slice(2);
  let kindArg = null;
  if (args[0] === '--kind') {
    kindArg = args[1];
    args.splice(0, 2);
  }
  if (args.length !== 1 || (kindArg !== null && !kindArg))
    fail(2, 'usage: validate.js [--kind NAME] FILE.json|-');
  const obj = readJSON(args[0]);
  const definitions = loadDefinitions();
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  ajv.addFormat('int-or-string', true);
  ajv.addSchema({ $id: ROOT_ID, definitions });

  let schema, expect = null;
  const crd = CRDS.find((c) => kindArg ? kindArg === c.alias
    : obj && obj.apiVersion === c.apiVersion && obj.kind === c.kind);
  if (crd) {
    // A CRD says only {type: object} of metadata; the API server checks
    // it as ObjectMeta.
    schema = closeObjects(readJSON(path.join(SCHEMAS, crd.file)));
    schema.properties.metadata = { $ref: `${ROOT_ID}#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta` };
    expect = { apiVersion: crd.apiVersion, kind: crd.kind };
  } else {
    let name = kindArg && definitions[kindArg] ? kindArg : null;
    if (!name) {
      const want = kindArg ? { kind: kindArg } : { apiVersion: obj && obj.apiVersion, kind: obj && obj.kind };
      name = Object.keys(definitions).find((n) => {
        const g = gvkOf(definitions[n]);
        return g && g.kind.toLowerCase() === String(want.kind).toLowerCase() &&
          (!want.apiVersion || g.apiVersion === want.apiVersion);
      }) || Object.keys(definitions).find((n) => kindArg && n.endsWith(`.${kindArg}`));
    }
    if (!name)
      fail(2, `no schema for ${kindArg || `${obj && obj.apiVersion} ${obj && obj.kind}`}`);
    schema = { $ref: `${ROOT_ID}#/definitions/${name}` };
    expect = gvkOf(definitions[name]);
  }

  const errors = [];
  const validate = ajv.compile(schema);
  if (!validate(obj))
    for (const e of validate.errors)
      errors.push(`${e.instancePath || '/'}: ${e.message}` +
        (e.params && e.params.additionalProperty ? ` (${e.params.additionalProperty})` : ''));
  // What the API server requires beyond the schema: the type it was sent
  // to, and a name.
  if (expect) {
    for (const key of ['apiVersion', 'kind'])
      if (obj[key] !== expect[key])
        errors.push(`/${key}: must be ${JSON.stringify(expect[key])}, is ${JSON.stringify(obj[key])}`);
    if (!obj.metadata || !(obj.metadata.name || obj.metadata.generateName))
      errors.push('/metadata: needs a name or generateName');
  }
  if (errors.length) {
    process.stdout.write(errors.join('\n') + '\n');
    process.exit(1);
  }
  process.stdout.write('OK\n');
}

main();
