// suite.mjs — finds the pieces of an HTTP caching test suite (cache-tests.fyi) in a
// directory, for origin.mjs, run.mjs and summarize.mjs.
//
// Two layouts are understood:
//   npm  — the npm package http-cache-tests (0.4.x): cli.mjs, client/, server/, lib/ and
//          tests/ at the top; its cli.mjs adds tests/surrogate-control.mjs to the list.
//   git  — a checkout of the suite's git repository (the layout cache-tests.fyi runs):
//          test-engine/{cli.mjs,client,server,lib} and tests/ at the top.
import fs from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'

export async function loadSuite (dir) {
  dir = path.resolve(dir)
  let engine
  if (fs.existsSync(path.join(dir, 'test-engine', 'client', 'runner.mjs'))) {
    engine = path.join(dir, 'test-engine')
  } else if (fs.existsSync(path.join(dir, 'client', 'runner.mjs'))) {
    engine = dir
  } else {
    throw new Error(`${dir} holds no cache-tests suite (no client/runner.mjs or test-engine/client/runner.mjs)`)
  }
  const layout = engine === dir ? 'npm' : 'git'
  const imp = p => import(pathToFileURL(p).href)
  const tests = (await imp(path.join(dir, 'tests', 'index.mjs'))).default
  // The npm package's cli.mjs appends the surrogate-control group itself; do the same so
  // that the list of tests run, and the one summarized, is the CLI's.
  const cli = path.join(engine, 'cli.mjs')
  const cliText = fs.existsSync(cli) ? fs.readFileSync(cli, 'utf8') : ''
  if (/tests\/surrogate-control\.mjs/.test(cliText) && !tests.some(s => s.id === 'surrogate-control')) {
    tests.push((await imp(path.join(dir, 'tests', 'surrogate-control.mjs'))).default)
  }
  let version = 'unknown'
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'))
    version = `${pkg.name}@${pkg.version}`
  } catch {}
  return { dir, engine, layout, tests, version, imp }
}

// The tests a CLI run executes (runner.mjs skips browser_only ones when not in a browser).
export function cliTests (tests) {
  const out = []
  for (const group of tests) {
    for (const test of group.tests) {
      if (test.browser_only === true) continue
      out.push({ group, test })
    }
  }
  return out
}

// Result classes, as cache-tests.fyi shows them (test-engine/lib/results.mjs,
// determineTestResult): with honourDeps, a test any of whose depends_on is not ✅ or Y is
// ⚪ whatever its own outcome.
export const CLASSES = {
  untested: '-',
  pass: '✅',
  fail: '⛔',
  optional_fail: '⚠️',
  yes: 'Y',
  no: 'N',
  setup_fail: '🔹',
  harness_fail: '⁉️',
  dependency_fail: '⚪',
  retry: '↻'
}

export function makeClassifier (tests) {
  const byId = new Map()
  for (const group of tests) for (const test of group.tests) byId.set(test.id, { group, test })
  function classify (id, results, honourDeps = true) {
    const entry = byId.get(id)
    if (!entry) throw new Error(`Cannot find test ${id}`)
    const { test } = entry
    const result = results[id]
    if (result === undefined) return 'untested'
    if (honourDeps && test.depends_on !== undefined) {
      for (const dep of test.depends_on) {
        const c = classify(dep, results, true)
        if (c !== 'pass' && c !== 'yes') return 'dependency_fail'
      }
    }
    if (result[0] === 'Setup') return result[1] === 'retry' ? 'retry' : 'setup_fail'
    if (result === false) return 'harness_fail'
    const ok = result === true
    if (test.kind === 'required' || test.kind === undefined) return ok ? 'pass' : 'fail'
    if (test.kind === 'optimal') return ok ? 'pass' : 'optional_fail'
    if (test.kind === 'check') return ok ? 'yes' : 'no'
    throw new Error(`Unrecognised test kind ${test.kind}`)
  }
  return { byId, classify }
}
