// Drives the official Node server SDK once: initialise, evaluate some flags, exit.
// Usage: node drive_server_sdk_details.js SDK_KEY STREAM_URI BASE_URI CONTEXT_JSON FLAG_KEY...
// Prints one JSON line: {"event":"init-failed","error":...} or
// {"event":"details","details":{FLAG_KEY:{"value":...,"variationIndex":...,"reason":...}}}
// with "DEFAULT" as every evaluation's default value. Exits by itself after 20 s.
const ld = require('@launchdarkly/node-server-sdk');

const [sdkKey, streamUri, baseUri, contextJson, ...flagKeys] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const logger = ld.basicLogger({ level: 'warn', destination: (line) => process.stderr.write(line + '\n') });
const client = ld.init(sdkKey, {
  streamUri, baseUri, eventsUri: baseUri, sendEvents: false, diagnosticOptOut: true,
  streamInitialReconnectDelay: 0.2, logger,
});
setTimeout(() => process.exit(2), 20000).unref();

client.waitForInitialization({ timeout: 10 }).then(async () => {
  const context = JSON.parse(contextJson);
  const details = {};
  for (const key of flagKeys) {
    details[key] = await client.variationDetail(key, context, 'DEFAULT');
  }
  out({ event: 'details', details });
}).catch((err) => {
  out({ event: 'init-failed', error: String(err) });
}).finally(() => {
  client.close();
  process.exit(0);
});
