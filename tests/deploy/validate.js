#!/usr/bin/env node
// Offline checks of deploy/ for scripts/check-deploy.sh:
//
//   validate.js manifests RENDERED.yaml... ALERTS.yml   each file one `kubectl kustomize` output
//   validate.js dashboard DASHBOARD.json DATASOURCES.yml
//   validate.js rules RENDERED.yaml     prints the PrometheusRule's groups as a rule file (JSON)
//
// manifests: every object against the Kubernetes (kubernetes-models) or Prometheus Operator
// (@kubernetes-models/prometheus-operator) schema of its apiVersion and kind (types, required
// fields, enums; the schemas allow unknown fields, so the fields that matter are also checked by
// path below); the pod meets the "restricted" Pod Security Standard; probes, drain timing, volumes
// and Services are as docs/deploy.md says; the PrometheusRule carries exactly the groups of
// ALERTS.yml. dashboard: the dashboard's data source references resolve to a provisioned data
// source. Prints each problem and exits 1 if there is any.
'use strict';
const fs = require('fs');
const util = require('util');
const YAML = require('yaml');

const problems = [];
const fail = (where, what) => problems.push(`${where}: ${what}`);

// apiVersion/kind -> the model class that validates it.
function model(apiVersion, kind) {
  const mod = apiVersion === 'monitoring.coreos.com/v1'
    ? `@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/${kind}`
    : `kubernetes-models/${apiVersion}/${kind}`;
  try {
    return require(mod)[kind];
  } catch (e) {
    return null;
  }
}

// The value at a dotted path, or undefined.
const at = (obj, path) => path.split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj);

function expect(where, obj, path, want) {
  const got = at(obj, path);
  if (!util.isDeepStrictEqual(got, want)) {
    fail(where, `${path} is ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  }
}

function checkDeployment(where, d) {
  const pod = d.spec.template.spec;
  expect(where, pod, 'securityContext.runAsNonRoot', true);
  expect(where, pod, 'securityContext.runAsUser', 10001);
  expect(where, pod, 'securityContext.runAsGroup', 10001);
  expect(where, pod, 'securityContext.fsGroup', 10001);
  expect(where, pod, 'securityContext.seccompProfile.type', 'RuntimeDefault');
  if (pod.hostNetwork || pod.hostIPC || pod.hostPID) fail(where, 'host namespaces are not allowed');
  for (const v of pod.volumes || []) {
    if (!v.emptyDir && !v.secret && !v.configMap) fail(where, `volume ${v.name}: only emptyDir, secret, configMap`);
  }
  const c = pod.containers.find((x) => x.name === 'an1d');
  if (!c) return fail(where, 'no container named an1d');
  const sc = `containers[an1d].securityContext`;
  for (const [path, want] of [['allowPrivilegeEscalation', false], ['readOnlyRootFilesystem', true],
    ['capabilities.drop', ['ALL']], ['runAsNonRoot', true]]) {
    expect(`${where} ${sc}`, c.securityContext || {}, path, want);
  }
  if ((at(c, 'securityContext.capabilities.add') || []).length) fail(where, 'capabilities added');
  if (at(c, 'securityContext.privileged')) fail(where, 'privileged container');
  if (!/^an1-engine(:|$)/.test((c.image || '').split('/').pop())) fail(where, `image ${c.image} is not an1-engine`);
  for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
    expect(`${where} ${probe}`, c, `${probe}.grpc.port`, 50051);
  }
  expect(where, c, 'lifecycle.preStop.exec.command', ['sleep', '5']);
  expect(where, c, 'command', ['an1d']);  // not the image's entrypoint, which has --ready-file too
  for (const arg of ['--listen=0.0.0.0:50051', '--metrics-listen=0.0.0.0:9464',
    '--shutdown-grace-seconds=30', '--ready-file=/tmp/an1d.ready']) {
    if (!(c.args || []).includes(arg)) fail(where, `args lack ${arg}`);
  }
  // preStop + the drain must end before the kubelet's SIGKILL.
  const grace = Number(((c.args || []).find((a) => a.startsWith('--shutdown-grace-seconds=')) || '=0').split('=')[1]);
  if (!(pod.terminationGracePeriodSeconds > 5 + grace)) {
    fail(where, `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} <= preStop 5 + drain ${grace}`);
  }
  if (!(at(c, 'resources.limits')?.['nvidia.com/gpu'] >= 1)) fail(where, 'no nvidia.com/gpu limit');
  const license = (c.env || []).find((e) => e.name === 'AN1_LICENSE_KEY');
  expect(`${where} env AN1_LICENSE_KEY`, license || {}, 'valueFrom.secretKeyRef.optional', true);
  const vol = (name) => (pod.volumes || []).find((v) => v.name === name) || {};
  const mount = (path) => (c.volumeMounts || []).find((m) => m.mountPath === path);
  for (const path of ['/dev/shm', '/tmp']) {
    const m = mount(path);
    if (!m) fail(where, `nothing mounted on ${path}`);
    else if (!vol(m.name).emptyDir) fail(where, `${path} is not an emptyDir`);
    else if (!vol(m.name).emptyDir.sizeLimit) fail(where, `${path} has no sizeLimit`);
  }
  if (mount('/dev/shm')) expect(where, vol(mount('/dev/shm').name), 'emptyDir.medium', 'Memory');
  for (const p of ['grpc', 'metrics']) {
    if (!(c.ports || []).some((x) => x.name === p)) fail(where, `no container port ${p}`);
  }
}

function manifests(files, alertsFile) {
  const alerts = YAML.parse(fs.readFileSync(alertsFile, 'utf8'));
  for (const file of files) {
    const docs = YAML.parseAllDocuments(fs.readFileSync(file, 'utf8'));
    const kinds = {};
    for (const doc of docs) {
      if (doc.errors.length) { fail(file, doc.errors.join('; ')); continue; }
      const obj = doc.toJS();
      if (obj == null) continue;
      const where = `${file} ${obj.kind}/${obj.metadata && obj.metadata.name}`;
      kinds[obj.kind] = (kinds[obj.kind] || 0) + 1;
      const Model = model(obj.apiVersion, obj.kind);
      if (!Model) { fail(where, `no schema for ${obj.apiVersion} ${obj.kind}`); continue; }
      try {
        new Model(obj).validate();
      } catch (e) {
        fail(where, `schema: ${e.message}`);
        continue;
      }
      if (obj.kind !== 'Namespace' && obj.metadata.namespace !== 'an1') fail(where, 'not in namespace an1');
      if (obj.kind === 'Namespace') expect(where, obj, 'metadata.labels', { ...obj.metadata.labels, 'pod-security.kubernetes.io/enforce': 'restricted' });
      if (obj.kind === 'Deployment') checkDeployment(where, obj);
      if (obj.kind === 'Service' && obj.metadata.name === 'an1d-headless') expect(where, obj, 'spec.clusterIP', 'None');
      if (obj.kind === 'ServiceMonitor') {
        expect(where, obj, 'spec.endpoints', [{ port: 'metrics', path: '/metrics', interval: '5s' }]);
      }
      if (obj.kind === 'PrometheusRule' && !util.isDeepStrictEqual(obj.spec.groups, alerts.groups)) {
        fail(where, `spec.groups differ from ${alertsFile} (scripts/check-deploy.sh --sync-rules)`);
      }
      if (obj.kind === 'HorizontalPodAutoscaler') {
        expect(where, obj, 'spec.metrics.0.type', 'Pods');
        expect(where, obj, 'spec.metrics.0.pods.metric.name', 'an1_queue_depth');
        if (obj.spec.scaleTargetRef.name !== 'an1d') fail(where, 'does not scale Deployment an1d');
      }
    }
    for (const kind of ['Namespace', 'Deployment', 'Service', 'PodDisruptionBudget', 'ServiceMonitor', 'PrometheusRule']) {
      if (!kinds[kind]) fail(file, `no ${kind}`);
    }
    console.log(`validate: ${file}: ${docs.length} objects (${Object.entries(kinds).map(([k, n]) => `${n} ${k}`).join(', ')})`);
  }
}

function dashboard(dashboardFile, datasourcesFile) {
  const dash = JSON.parse(fs.readFileSync(dashboardFile, 'utf8'));
  const sources = YAML.parse(fs.readFileSync(datasourcesFile, 'utf8')).datasources || [];
  const uids = new Set(sources.map((s) => s.uid));
  const vars = new Map((dash.templating?.list || []).filter((v) => v.type === 'datasource').map((v) => [v.name, v]));
  const refs = [];
  const walk = (o) => {
    if (Array.isArray(o)) o.forEach(walk);
    else if (o && typeof o === 'object') {
      if (o.datasource && typeof o.datasource === 'object') refs.push(o.datasource.uid);
      Object.values(o).forEach(walk);
    }
  };
  walk(dash.panels);
  for (const uid of new Set(refs)) {
    const v = /^\$\{(\w+)\}$/.exec(uid || '');
    if (v && !vars.has(v[1])) fail(dashboardFile, `${uid}: no data source variable ${v[1]} (a provisioned dashboard gets no __inputs)`);
    else if (v && !uids.has(vars.get(v[1]).current?.value)) fail(dashboardFile, `variable ${v[1]} defaults to no provisioned data source`);
    else if (!v && !uids.has(uid)) fail(dashboardFile, `data source uid ${uid} is not provisioned in ${datasourcesFile}`);
  }
  console.log(`validate: ${dashboardFile}: ${refs.length} data source references, provisioned uids ${[...uids].join(', ')}`);
}

function rules(file) {
  const rule = YAML.parseAllDocuments(fs.readFileSync(file, 'utf8')).map((d) => d.toJS())
    .find((o) => o && o.kind === 'PrometheusRule');
  if (!rule) fail(file, 'no PrometheusRule');
  else console.log(JSON.stringify({ groups: rule.spec.groups }, null, 1));
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'rules' && args.length === 1) rules(args[0]);
else if (mode === 'manifests' && args.length >= 2) manifests(args.slice(0, -1), args[args.length - 1]);
else if (mode === 'dashboard' && args.length === 2) dashboard(...args);
else { console.error('usage: validate.js manifests RENDERED.yaml... ALERTS.yml | dashboard DASHBOARD.json DATASOURCES.yml | rules RENDERED.yaml'); process.exit(2); }
for (const p of problems) console.error(`FAIL ${p}`);
process.exit(problems.length ? 1 : 0);
