// run.mjs — runs the suite's client against a cache, as the suite's cli.mjs does.
//
//   node run.mjs SUITE_DIR BASE_URL [TEST_ID]
//
// Without TEST_ID: every CLI test (browser_only ones are skipped, as by cli.mjs) through the
// suite's own client/runner.mjs, 100 at a time; the results JSON (test id -> true or
// [error name, message]) goes to stdout, the same object cli.mjs prints.
// With TEST_ID: that one test with the suite's request/response dump, then its outcome.
// DUMP=id1,id2 (whole run): those tests' dumps go to stderr; the JSON alone to stdout.
//
// The one difference from cli.mjs: every fetch has a timeout (REQ_TIMEOUT_MS, default
// 10000), so a request the cache never answers fails its own test (FetchError
// "network timeout ...") instead of hanging the whole run.
import path from 'node:path'
import { createRequire } from 'node:module'
import { loadSuite, makeClassifier, CLASSES } from './suite.mjs'

const [dir, baseArg, testId] = process.argv.slice(2)
if (!dir || !baseArg) {
  console.error('usage: node run.mjs SUITE_DIR BASE_URL [TEST_ID]')
  process.exit(2)
}
const baseUrl = baseArg.replace(/\/+$/, '') // the client appends "/test/...", "/config/..."
const timeoutMs = Number(process.env.REQ_TIMEOUT_MS || 10000)

const suite = await loadSuite(dir)
const { runTests, getResults } = await suite.imp(path.join(suite.engine, 'client', 'runner.mjs'))

// The suite's own fetch implementation, from its node_modules.
function loadFetch () {
  for (const base of [path.join(suite.dir, 'package.json'), import.meta.url]) {
    const req = createRequire(base)
    for (const name of ['node-fetch', 'node-fetch-with-proxy']) {
      try {
        const m = req(name)
        return m.default || m
      } catch {}
    }
  }
  throw new Error('node-fetch is not installed (run npm ci in bench/cachetests)')
}
const nodeFetch = loadFetch()
const fetchWithTimeout = (url, init = {}) => nodeFetch(url, { ...init, timeout: timeoutMs })

// The JSON goes to stdout alone: whatever the suite logs (its dumps) goes to stderr.
const out = process.stdout
if (!testId) console.log = (...args) => console.error(...args)

// DUMP=id1,id2: in a whole run, those tests log their requests and responses (to stderr),
// as in a one-test run; the other tests run alongside, as usual.
const dumpIds = new Set((process.env.DUMP || '').split(',').map(s => s.trim()).filter(Boolean))

let toRun = suite.tests
if (!testId && dumpIds.size) {
  for (const group of suite.tests) for (const test of group.tests) if (dumpIds.has(test.id)) test.dump = true
}
if (testId) {
  toRun = undefined
  for (const group of suite.tests) {
    for (const test of group.tests) {
      if (test.id === testId) {
        test.dump = true
        toRun = [{ name: group.name, id: group.id, description: group.description, tests: [test] }]
      }
    }
  }
  if (!toRun) {
    console.error(`no test with id ${testId} in ${suite.version}`)
    process.exit(2)
  }
  console.log(`Running ${testId} (${suite.version}) against ${baseUrl}`)
}

try {
  await runTests(toRun, fetchWithTimeout, false, baseUrl)
} catch (err) {
  console.error(err)
  process.exit(1)
}
const results = getResults()
if (testId) {
  const { classify, byId } = makeClassifier(suite.tests)
  const cls = classify(testId, results, false)
  const r = results[testId]
  console.log(`==== Result: ${CLASSES[cls]} ${cls} (kind ${byId.get(testId).test.kind || 'required'})` +
    (Array.isArray(r) ? ` - ${r[0]}: ${r[1]}` : ''))
} else {
  out.write(JSON.stringify(results, null, 2) + '\n')
}
