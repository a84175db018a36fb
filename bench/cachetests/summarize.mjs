// summarize.mjs — counts a cache-tests results file the way cache-tests.fyi does.
//
//   node summarize.mjs SUITE_DIR RESULTS.json [--baseline OLD.json] [--compare]
//
// Every CLI test (browser_only ones are not run from the CLI) gets the class the site
// shows (suite.mjs makeClassifier = the suite's determineTestResult, dependencies
// honoured): ✅ pass, ⛔ required failure, ⚠️ optional failure (kind "optimal"), Y/N
// (kind "check"), 🔹 setup failure, ↻ retry seen, ⁉️ harness failure, ⚪ dependency
// failed (a depends_on test is not ✅/Y, so this one is not counted as a result).
// Tests without a kind count as required, as on the site.
//
// Printed: the totals, the same counts per group, then every test that is not ✅/Y with
// its kind and the suite's message: ⛔ first, then ⚠️, 🔹/↻/⁉️, ⚪ (with the dependency
// that blocked it and the test's own outcome), and the N checks.
// --baseline: which tests changed class since OLD.json.
// Under a listed test, "note:" says how the suite's current git version differs
// (upstream-diff.mjs), when the suite run is the npm package.
// --compare: the same totals for the results files bundled with the suite (other caches,
// as measured by the suite's authors with that version of the suite).
import fs from 'node:fs'
import path from 'node:path'
import { loadSuite, cliTests, makeClassifier, CLASSES } from './suite.mjs'
import upstreamDiff from './upstream-diff.mjs'

const args = process.argv.slice(2)
let baseline = null
let compare = false
const pos = []
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--baseline') baseline = args[++i]
  else if (args[i] === '--compare') compare = true
  else pos.push(args[i])
}
if (pos.length !== 2) {
  console.error('usage: node summarize.mjs SUITE_DIR RESULTS.json [--baseline OLD.json] [--compare]')
  process.exit(2)
}
const [dir, file] = pos
const suite = await loadSuite(dir)
const all = cliTests(suite.tests)
const { byId, classify } = makeClassifier(suite.tests)
const readJSON = f => JSON.parse(fs.readFileSync(f, 'utf8'))
const results = readJSON(file)

const kindOf = t => t.kind || 'required'
const ORDER = ['pass', 'fail', 'optional_fail', 'yes', 'no', 'setup_fail', 'retry', 'harness_fail', 'dependency_fail', 'untested']

function count (res, entries = all) {
  const c = Object.fromEntries(ORDER.map(k => [k, 0]))
  const raw = { required: [0, 0], optimal: [0, 0], check: [0, 0] } // [✅ or Y ignoring deps, tests]
  for (const { test } of entries) {
    c[classify(test.id, res, true)]++
    const r = raw[kindOf(test)]
    r[1]++
    if (res[test.id] === true) r[0]++
  }
  return { c, raw }
}

function totalsLine ({ c }) {
  let setup = `🔹 setup ${c.setup_fail}`
  const extra = []
  if (c.retry) extra.push(`+${c.retry} ↻ retry`)
  if (c.harness_fail) extra.push(`+${c.harness_fail} ⁉️ harness`)
  if (extra.length) setup += ` (${extra.join(', ')})`
  let line = `✅ pass ${c.pass} | ⛔ required fail ${c.fail} | ⚠️ optional fail ${c.optional_fail} | ` +
    `checks Y/N ${c.yes}/${c.no} | ${setup} | ⚪ dependency ${c.dependency_fail}`
  if (c.untested) line += ` | - untested ${c.untested}`
  return line
}
function rawLine ({ raw }) {
  return `ignoring dependencies: required ✅ ${raw.required[0]}/${raw.required[1]}, ` +
    `optimal ✅ ${raw.optimal[0]}/${raw.optimal[1]}, checks Y ${raw.check[0]}/${raw.check[1]}`
}

const msg = r => {
  if (r === undefined) return '(no result)'
  if (r === true) return 'passed'
  if (r === false) return 'false (harness)'
  return r[0] === 'Assertion' ? String(r[1]) : `${r[0]}: ${r[1]}`
}
const oneLine = s => String(s).replace(/\s+/g, ' ').trim()

const total = count(results)
const nBrowser = suite.tests.reduce((n, g) => n + g.tests.filter(t => t.browser_only === true).length, 0)
const extraIds = Object.keys(results).filter(id => !byId.has(id))

console.log(`cache-tests summary — ${suite.version} (${suite.layout} layout), ${path.basename(file)}`)
console.log(`${all.length} CLI tests (${nBrowser} browser_only not run) in ${suite.tests.length} groups; ` +
  `${Object.keys(results).length} results`)
if (extraIds.length) console.log(`results for unknown test ids (another suite version?): ${extraIds.join(', ')}`)
console.log('')
console.log(totalsLine(total))
console.log(rawLine(total))
if (suite.layout === 'npm') {
  const failIds = all.filter(({ test }) => classify(test.id, results, true) === 'fail').map(({ test }) => test.id)
  const old = failIds.filter(id => upstreamDiff[id]?.outdated).length
  if (old) {
    console.log(`of the ${failIds.length} ⛔, ${old} test a requirement the suite's current version dropped or ` +
      `reversed (upstream-diff.mjs); ${failIds.length - old} remain against the current suite`)
  }
}

// Per group.
console.log('')
const rows = [['group', 'tests', '✅', '⛔', '⚠️', 'Y', 'N', '🔹↻⁉️', '⚪']]
for (const group of suite.tests) {
  const entries = all.filter(e => e.group === group)
  if (!entries.length) continue
  const { c } = count(results, entries)
  rows.push([group.id, entries.length, c.pass, c.fail, c.optional_fail, c.yes, c.no,
    c.setup_fail + c.retry + c.harness_fail, c.dependency_fail].map(String))
}
const widths = rows[0].map((_, i) => Math.max(...rows.map(r => [...r[i]].length)))
for (const r of rows) {
  console.log(r.map((v, i) => i === 0 ? v.padEnd(widths[i]) : v.padStart(widths[i])).join('  '))
}

// Lists.
const diff = id => (suite.layout === 'npm' ? upstreamDiff[id] : undefined)
function section (title, cls, withDep = false) {
  const hits = all.filter(({ test }) => classify(test.id, results, true) === cls)
  console.log('')
  const old = hits.filter(({ test }) => diff(test.id)?.outdated).length
  console.log(`${title} (${hits.length}` +
    (old ? `; ${old} of them no longer required by the current suite, see the notes` : '') + ')')
  for (const { group, test } of hits) {
    let line = `  ${CLASSES[cls]} ${test.id} [${group.id}, ${kindOf(test)}]`
    if (withDep) {
      const blockers = test.depends_on.filter(d => !['pass', 'yes'].includes(classify(d, results, true)))
      const own = classify(test.id, results, false)
      line += ` — needs ${blockers.map(d => `${d} (${CLASSES[classify(d, results, true)]})`).join(', ')}; ` +
        `own outcome ${CLASSES[own]}` + (results[test.id] === true ? '' : `: ${oneLine(msg(results[test.id]))}`)
    } else {
      line += ` — ${oneLine(msg(results[test.id]))}`
    }
    console.log(line)
    console.log(`      ${oneLine(test.name)}`)
    if (diff(test.id)) console.log(`      note: ${diff(test.id).note}`)
  }
}
section('⛔ required failures', 'fail')
section('⚠️ optional failures', 'optional_fail')
section('🔹 setup failures', 'setup_fail')
section('↻ retries seen', 'retry')
section('⁉️ harness failures', 'harness_fail')
section('⚪ dependency failures (not counted as results)', 'dependency_fail', true)
section('N checks (information, not failures)', 'no')
if (total.c.untested) section('- untested (no result)', 'untested')

if (baseline) {
  console.log('')
  const old = readJSON(baseline)
  const changed = []
  for (const { test } of all) {
    const a = classify(test.id, old, true)
    const b = classify(test.id, results, true)
    if (a !== b) changed.push(`  ${test.id}: ${CLASSES[a]} -> ${CLASSES[b]}`)
  }
  console.log(`changes since ${path.basename(baseline)}: ${changed.length}`)
  console.log(`  then: ${totalsLine(count(old))}`)
  for (const l of changed) console.log(l)
}

if (compare) {
  const resDir = path.join(suite.dir, 'results')
  let index = []
  try {
    index = (await suite.imp(path.join(resDir, 'index.mjs'))).default
  } catch {}
  const others = index.filter(i => i.type !== 'browser' && fs.existsSync(path.join(resDir, i.file)))
  if (others.length) {
    console.log('')
    console.log(`bundled results of ${suite.version}, counted the same way:`)
    for (const i of others) {
      const r = readJSON(path.join(resDir, i.file))
      console.log(`  ${`${i.name} ${i.version || ''}`.padEnd(34)} ${totalsLine(count(r))}`)
    }
  }
}
