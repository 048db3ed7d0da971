// Runs the benches in sequence against one scratch database.
// `npm run bench` runs them all; `npm run bench -- login-storm` runs only the named ones.
import { runArgon2Settings } from './argon2-settings.ts';
import { runE2e } from './e2e.ts';
import { runCalls } from './calls.ts';
import { runDeliverySoak } from './delivery-soak.ts';
import { runEncryption } from './encryption.ts';
import { runFanout } from './fanout.ts';
import { runGroup10k } from './group-10k.ts';
import { runFourInstances } from './four-instances.ts';
import { runLimits } from './limits.ts';
import { runLoginStorm } from './login-storm.ts';
import { runMessageGrowth } from './message-growth.ts';
import { runPush } from './push.ts';
import { runSendMentions } from './send-mentions.ts';

import { runSearch } from './search.ts';
import { runSendMessage } from './send-message.ts';
import { runSendProfile } from './send-profile.ts';
import { runStickyReads } from './sticky-reads.ts';
import { describeMachine, openBenchDatabase, RATE_LIMITS_NOTICE, type Bench } from './setup.ts';
import { runTracing } from './tracing.ts';
import { runUploadBench } from './upload.ts';
import { runWsIdle } from './ws-idle.ts';

const benches: Bench[] = [
  { name: 'login-storm', run: runLoginStorm },
  { name: 'argon2-settings', run: runArgon2Settings },
  { name: 'encryption', run: runEncryption },
  { name: 'send-message', run: runSendMessage },
  { name: 'send-mentions', run: runSendMentions },
  { name: 'send-profile', run: runSendProfile },
  { name: 'upload', run: runUploadBench },
  { name: 'push', run: runPush },
  { name: 'ws-idle', run: runWsIdle },
  { name: 'fanout', run: runFanout },
  { name: 'group-10k', run: runGroup10k },
  { name: 'limits', run: runLimits },
  { name: 'tracing', run: runTracing },
  { name: 'e2e', run: runE2e },
  { name: 'calls', run: runCalls },
  { name: 'delivery-soak', run: runDeliverySoak },
  { name: 'four-instances', run: runFourInstances },
  { name: 'message-growth', run: runMessageGrowth },
  { name: 'sticky-reads', run: runStickyReads },

  { name: 'search', run: runSearch },
];

async function main() {
  const requested = process.argv.slice(2);
  const unknown = requested.filter((name) => !benches.some((bench) => bench.name === name));
  if (unknown.length > 0) {
    console.error(`unknown bench: ${unknown.join(', ')}; available: ${benches.map((bench) => bench.name).join(', ')}`);
    process.exitCode = 1;
    return;
  }
  const selected = requested.length > 0 ? benches.filter((bench) => requested.includes(bench.name)) : benches;

  const database = await openBenchDatabase();
  try {
    console.log(await describeMachine(database.url));
    console.log(RATE_LIMITS_NOTICE);
    for (const bench of selected) {
      console.log(`\n== ${bench.name} ==`);
      await bench.run({ databaseUrl: database.url });
    }
  } finally {
    await database.stop();
  }
}

await main();
