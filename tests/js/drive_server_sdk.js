// Drives the official Node server SDK for flagstream's end-to-end tests.
// Usage: node drive_server_sdk.js SDK_KEY STREAM_URI BASE_URI FLAG_KEY [--polling] [--evaluate N]
// With --evaluate N it evaluates the flag N times, flushes analytics events to BASE_URI and
// prints {"event":"flushed"}.
// Prints JSON lines on stdout: {"event":"ready"} | {"event":"init-failed",...} |
// {"event":"value","value":...} whenever the flag's value for user-1 changes. Exits by itself
// after 60 s or when stdin closes.
const ld = require('@launchdarkly/node-server-sdk');

const [sdkKey, streamUri, baseUri, flagKey] = process.argv.slice(2, 6);
const polling = process.argv.includes('--polling');
const evalIdx = process.argv.indexOf('--evaluate');
const evaluateN = evalIdx > 0 ? Number(process.argv[evalIdx + 1]) : 0;
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const logger = ld.basicLogger({ level: 'warn', destination: (line) => process.stderr.write(line + '\n') });

const client = ld.init(sdkKey, {
  streamUri, baseUri, eventsUri: baseUri, stream: !polling, sendEvents: evaluateN > 0, flushInterval: 0.5,
  diagnosticOptOut: true, streamInitialReconnectDelay: 0.2, logger,
});
const context = { kind: 'user', key: 'user-1' };
let last;
let timer;

function shutdown(code) {
  clearInterval(timer);
  client.close();
  process.exit(code);
}

client.waitForInitialization({ timeout: 10 }).then(async () => {
  out({ event: 'ready' });
  if (evaluateN > 0) {
    for (let i = 0; i < evaluateN; i += 1) {
      await client.variation(flagKey, context, 'DEFAULT');
    }
    await client.flush();
    out({ event: 'flushed', count: evaluateN });
  }
  timer = setInterval(async () => {
    const value = await client.variation(flagKey, context, 'DEFAULT');
    const text = JSON.stringify(value);
    if (text !== last) {
      last = text;
      out({ event: 'value', value });
    }
  }, 20);
}).catch((err) => {
  out({ event: 'init-failed', error: String(err) });
  shutdown(1);
});

process.stdin.on('end', () => shutdown(0));
process.stdin.resume();
setTimeout(() => shutdown(0), 60000).unref();
