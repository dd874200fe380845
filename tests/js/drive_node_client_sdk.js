// Drives the official Node client-side SDK (launchdarkly-node-client-sdk) for flagstream's
// end-to-end tests. Usage: node drive_node_client_sdk.js ENV_ID STREAM_URL BASE_URL FLAG_KEY CONTEXT_KEY
// Prints JSON lines: {"event":"ready","value":...}, {"event":"value","value":...},
// {"event":"identified","value":...}. Reads commands on stdin, one per line:
// {"identify": {...context...}}. Exits after 60 s or when stdin closes.
const LDClient = require('launchdarkly-node-client-sdk');
const readline = require('readline');

const [envId, streamUrl, baseUrl, flagKey, contextKey] = process.argv.slice(2, 7);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const client = LDClient.initialize(envId, { kind: 'user', key: contextKey }, {
  baseUrl, streamUrl, eventsUrl: baseUrl, streaming: true, sendEvents: true,
  logger: LDClient.basicLogger({ level: 'warn', destination: (l) => process.stderr.write(l + '\n') }),
});

client.on('change:' + flagKey, (current) => out({ event: 'value', value: current }));
client.waitForInitialization(10).then(() => {
  out({ event: 'ready', value: client.variation(flagKey, 'DEFAULT') });
}).catch((e) => out({ event: 'init-failed', error: String(e) }));

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  const cmd = JSON.parse(line);
  if (cmd.identify) {
    await client.identify(cmd.identify);
    out({ event: 'identified', value: client.variation(flagKey, 'DEFAULT') });
  }
});
rl.on('close', async () => { await client.close().catch(() => {}); process.exit(0); });
setTimeout(() => process.exit(0), 60000).unref();
