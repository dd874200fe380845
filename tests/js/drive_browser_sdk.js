// Runs the official browser SDK (launchdarkly-js-client-sdk) in real headless Chromium for
// flagstream's end-to-end tests. The page is served by this script on its own port, so it has a
// different origin from flagstream and every request is a real cross-origin one (CORS and
// preflights included).
// Usage: node drive_browser_sdk.js ENV_ID STREAM_URL BASE_URL FLAG_KEY CONTEXT_KEY
// Prints JSON lines: {"event":"ready","value":...}, {"event":"value","value":...},
// {"event":"error",...}, every request/response, and CORS preflights ({"event":"preflight"}).
// Exits after 60 s or when stdin closes.
const http = require('http');
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const [envId, streamUrl, baseUrl, flagKey, contextKey] = process.argv.slice(2, 7);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const sdkJs = fs.readFileSync(
  path.join(__dirname, 'node_modules/launchdarkly-js-client-sdk/dist/ldclient.min.js'));

const page = `<!doctype html><html><head><script src="/ldclient.min.js"></script></head>
<body><div id="value">loading</div><script>
const client = LDClient.initialize(${JSON.stringify(envId)},
  { kind: 'user', key: ${JSON.stringify(contextKey)} },
  { baseUrl: ${JSON.stringify(baseUrl)}, streamUrl: ${JSON.stringify(streamUrl)},
    eventsUrl: ${JSON.stringify(baseUrl)}, streaming: true, sendEvents: true, flushInterval: 2000 });
const show = (v) => { document.getElementById('value').textContent = JSON.stringify(v); };
client.on('ready', () => { const v = client.variation(${JSON.stringify(flagKey)}, 'DEFAULT');
  show(v); window.report({ event: 'ready', value: v }); });
client.on('failed', (e) => window.report({ event: 'error', error: String(e) }));
client.on('change:' + ${JSON.stringify(flagKey)}, (current) => { show(current);
  window.report({ event: 'value', value: current }); });
</script></body></html>`;

const server = http.createServer((req, res) => {
  if (req.url === '/ldclient.min.js') {
    res.writeHead(200, { 'Content-Type': 'application/javascript' });
    res.end(sdkJs);
  } else {
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end(page);
  }
});

let browser;
async function shutdown(code) {
  if (browser) await browser.close().catch(() => {});
  server.close();
  process.exit(code);
}

server.listen(0, '127.0.0.1', async () => {
  const origin = `http://127.0.0.1:${server.address().port}`;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const ctx = await browser.newContext();
  const p = await ctx.newPage();
  await p.exposeFunction('report', (o) => out(o));
  p.on('requestfailed', (r) => out({ event: 'requestfailed', url: r.url(), failure: r.failure() && r.failure().errorText }));
  p.on('console', (m) => process.stderr.write(`console ${m.type()}: ${m.text()}\n`));
  p.on('request', (r) => out({ event: 'request', method: r.method(), url: r.url() }));
  p.on('response', (r) => out({ event: 'response', status: r.status(), url: r.url(), method: r.request().method() }));
  // CORS preflights are not page requests in playwright: watch them through the DevTools protocol.
  const cdp = await ctx.newCDPSession(p);
  await cdp.send('Network.enable');
  const preflights = new Map();
  cdp.on('Network.requestWillBeSent', (e) => {
    if (e.type === 'Preflight' || e.request.method === 'OPTIONS') preflights.set(e.requestId, e.request.url);
  });
  cdp.on('Network.responseReceived', (e) => {
    if (preflights.has(e.requestId)) out({ event: 'preflight', url: e.response.url, status: e.response.status });
  });
  cdp.on('Network.loadingFailed', (e) => {
    if (preflights.has(e.requestId)) out({ event: 'preflight-failed', url: preflights.get(e.requestId), error: e.errorText });
  });
  out({ event: 'page', origin });
  await p.goto(origin + '/');
});

process.stdin.on('end', () => shutdown(0));
process.stdin.resume();
setTimeout(() => shutdown(0), 60000).unref();
