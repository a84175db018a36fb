// origin.mjs — the suite's test origin server, bound to one loopback address.
//
//   node origin.mjs SUITE_DIR HOST:PORT
//
// The suite's own server/server.mjs listens on every interface and writes a pidfile; this
// is the same dispatch (config/, test/, state/, else files from the working directory)
// over the suite's own handlers, listening on HOST:PORT only.
import http from 'node:http'
import path from 'node:path'
import { loadSuite } from './suite.mjs'

const [dir, listen] = process.argv.slice(2)
if (!dir || !listen || !/^[^:]+:\d+$/.test(listen)) {
  console.error('usage: node origin.mjs SUITE_DIR HOST:PORT')
  process.exit(2)
}
const host = listen.slice(0, listen.lastIndexOf(':'))
const port = Number(listen.slice(listen.lastIndexOf(':') + 1))

const suite = await loadSuite(dir)
const srv = path.join(suite.engine, 'server')
const handler = async name => (await suite.imp(path.join(srv, `handle-${name}.mjs`))).default
const handleConfig = await handler('config')
const handleTest = await handler('test')
const handleState = await handler('state')
const handleFile = await handler('file')

const baseUrl = `http://${listen}/`
function handleMain (request, response) {
  const url = new URL(request.url, baseUrl)
  const pathSegs = url.pathname.split('/')
  pathSegs.shift()
  const dispatch = pathSegs.shift()
  if (dispatch === 'config') {
    handleConfig(pathSegs, request, response)
  } else if (dispatch === 'test') {
    handleTest(pathSegs, request, response)
  } else if (dispatch === 'state') {
    handleState(pathSegs, request, response)
  } else {
    handleFile(url, request, response)
  }
}

const server = http.createServer(handleMain)
server.on('error', err => { console.error(`origin: ${err.message}`); process.exit(1) })
server.listen(port, host, () => {
  console.log(`origin (${suite.version}, ${suite.layout} layout) listening on http://${listen}/`)
})
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0))
