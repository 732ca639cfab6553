// examples/kubernetes/ is a deployment that runs: every manifest passes kubernetes-validate (--strict, the
// Kubernetes schemas it bundles, run with no network at all), and what the schemas cannot know is checked here:
// the probes hit the store's /healthz and /readyz on the metrics port, the grace period covers the documented drain
// bound, the selectors agree, and the PrometheusRule carries exactly the shipped alert rules.
// kubernetes-validate comes from PyPI into node_modules/.cache/kubernetes-validate-venv (scripts/test-servers.sh).
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import test from 'ava'

import { tempDir } from './helpers.mjs'

const repo = path.resolve(import.meta.dirname, '..')
const dir = path.join(repo, 'examples', 'kubernetes')
const venv = path.join(repo, 'node_modules', '.cache', 'kubernetes-validate-venv', 'bin')
const manifests = ['deployment.yaml', 'pdb.yaml', 'secret.example.yaml', 'monitoring.yaml']

/** kubernetes-validate in a network namespace of its own: no route anywhere, so the schemas must be bundled. */
function validate(files, cwd = dir) {
  const args = ['-n', path.join(venv, 'kubernetes-validate'), '--strict', ...files]
  return spawnSync('unshare', args, { cwd, encoding: 'utf8' })
}

/** Every YAML document of a file, parsed by the venv's PyYAML (kubernetes-validate's own dependency). */
function load(file) {
  const script = 'import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))'
  const res = spawnSync(path.join(venv, 'python'), ['-c', script, file], { encoding: 'utf8' })
  if (res.status !== 0) throw new Error(res.stderr)
  return JSON.parse(res.stdout)
}

test('every manifest passes kubernetes-validate --strict offline, and a broken one does not', (t) => {
  t.true(fs.existsSync(path.join(venv, 'kubernetes-validate')), 'run scripts/test-servers.sh (npm test does)')
  const res = validate(manifests)
  t.is(res.status, 0, res.stdout + res.stderr)
  for (const [file, resource] of [
    ['deployment.yaml', 'deployment/wwebjs-workers'],
    ['pdb.yaml', 'poddisruptionbudget/wwebjs-workers'],
    ['secret.example.yaml', 'secret/wwebjs-store'],
    ['monitoring.yaml', 'service/wwebjs-rust-store'],
  ]) {
    t.regex(res.stdout + res.stderr, new RegExp(`${file} passed for resource ${resource} `), file)
  }
  // The validator really reads the schemas: an unknown field in the container is refused.
  const broken = tempDir(t)
  const text = fs.readFileSync(path.join(dir, 'deployment.yaml'), 'utf8').replace('- name: worker\n', '- name: worker\n          restartPolicyy: Always\n')
  fs.writeFileSync(path.join(broken, 'deployment.yaml'), text)
  const refused = validate(['deployment.yaml'], broken)
  t.not(refused.status, 0, refused.stdout + refused.stderr)
  t.regex(refused.stdout + refused.stderr, /restartPolicyy/)
})

test('probes, grace period, secrets and selectors agree with the store and the docs', (t) => {
  const [deployment] = load(path.join(dir, 'deployment.yaml'))
  const [pdb] = load(path.join(dir, 'pdb.yaml'))
  const [secret] = load(path.join(dir, 'secret.example.yaml'))
  const [service, monitor, rule] = load(path.join(dir, 'monitoring.yaml'))
  const pod = deployment.spec.template
  const [worker] = pod.spec.containers
  const env = Object.fromEntries(worker.env.map((e) => [e.name, e]))

  // The metrics port the store serves (METRICS_PORT, all interfaces) is the one probed and scraped.
  const port = worker.ports.find((p) => p.name === 'metrics')
  t.is(String(port.containerPort), env.METRICS_PORT.value)
  t.is(env.METRICS_HOST.value, '0.0.0.0')
  t.deepEqual(worker.livenessProbe.httpGet, { path: '/healthz', port: 'metrics' })
  t.deepEqual(worker.readinessProbe.httpGet, { path: '/readyz', port: 'metrics' })
  // /readyz waits up to 2 s for the primary (metrics::READY_TIMEOUT): the probe must wait longer.
  t.true(worker.readinessProbe.timeoutSeconds > 2)
  t.true(worker.livenessProbe.timeoutSeconds > 2)

  // workerId is the pod's name, from the downward API.
  t.deepEqual(env.WORKER_ID.valueFrom, { fieldRef: { fieldPath: 'metadata.name' } })
  // The grace period covers the preStop pause and the drain bound of docs/fleet.md at the default timing, handing
  // the pod's sessions to other workers: ceil(capacity / maxConcurrentStarts 4) waves of stopTimeoutMs 10 s +
  // renewEveryMs 6 s + a 20 s Chromium start, with room for store.close().
  const [, pause] = worker.lifecycle.preStop.exec.command
  const capacity = Number(env.WORKER_CAPACITY.value)
  t.true(capacity >= 1, String(capacity))
  const drainSeconds = Math.ceil(capacity / 4) * (10 + 6 + 20)
  t.true(pod.spec.terminationGracePeriodSeconds >= Number(pause) + drainSeconds + 10, String(pod.spec.terminationGracePeriodSeconds))
  t.regex(fs.readFileSync(path.join(repo, 'examples', 'kubernetes', 'worker.js'), 'utf8'),
    /await fleet\.drain\(\)[^]*await fleet\.close\(\)[^]*await store\.close\(\)/)

  // Secrets come from the Secret, by the names RustStore.fromEnv() reads.
  t.deepEqual(worker.envFrom, [{ secretRef: { name: secret.metadata.name } }])
  t.deepEqual(Object.keys(secret.stringData).sort(), ['REDIS_URL', 'S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY', 'SESSION_ENCRYPTION_KEY'])
  for (const name of Object.keys(secret.stringData)) t.false(name in env, `${name} must not be in plain env`)

  // Chromium: requests sized per session, and a /dev/shm of memory.
  t.truthy(worker.resources.requests.memory && worker.resources.requests.cpu && worker.resources.limits.memory)
  const shm = worker.volumeMounts.find((m) => m.mountPath === '/dev/shm')
  t.is(pod.spec.volumes.find((v) => v.name === shm.name).emptyDir.medium, 'Memory')

  // One selector for all: the Deployment's pods, the PDB, the Service and the ServiceMonitor.
  const labels = pod.metadata.labels
  t.deepEqual(deployment.spec.selector.matchLabels, labels)
  t.deepEqual(pdb.spec.selector.matchLabels, labels)
  t.deepEqual(service.spec.selector, labels)
  t.deepEqual(monitor.spec.selector.matchLabels, service.metadata.labels)
  t.is(monitor.spec.endpoints[0].port, service.spec.ports[0].name)
  t.is(service.spec.ports[0].targetPort, 'metrics')
  t.is(pdb.spec.maxUnavailable, 1)

  // The shipped alert rules, unchanged; they name the job, which the operator takes from the Service's name.
  const [alerts] = load(path.join(repo, 'examples', 'prometheus', 'alerts.yml'))
  t.deepEqual(rule.spec.groups, alerts.groups)
  t.is(rule.kind, 'PrometheusRule')
  t.regex(JSON.stringify(alerts), new RegExp(`job=\\\\"${service.metadata.name}\\\\"`))
})
