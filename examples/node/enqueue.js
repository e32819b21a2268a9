// Enqueue a few jobs from Node through the simbi-workers client, as an app would.
//
//   make install                      # builds clients/typescript
//   .venv/bin/simbi-workers start     # in another terminal (or set REDIS_URL to its Redis)
//   cd examples/node && npm install && node enqueue.js
//
// Then: var/outbox/slack.jsonl has the Slack message and var/outbox/mixpanel.jsonl the event.
const {
  performAsync,
  performIn,
  Slack,
  Analytics,
  JobInputError,
  closeDefaultClient,
} = require("simbi-workers-client");

async function main() {
  const slack = await Slack.notify("signups", null, "Hello from Node 👋");
  const tracked = await Analytics.mixpanelTrack("7", "Signed Up", {
    plan: "free",
    source: "node-example",
  });
  const event = await performAsync(
    "UserEventTrackerWorker",
    7,
    "login",
    { via: "node" },
    null,
  );
  const later = await performIn(
    60,
    "SlackNotifierWorker",
    "signups",
    null,
    "A minute later, from Node",
  );
  console.log(JSON.stringify({ slack, tracked, event, later }, null, 2));

  try {
    // A mistake is refused before anything reaches Redis, with the Python client's words.
    await performAsync("SlackNotifierWorkr", "signups", null, "typo");
  } catch (error) {
    if (!(error instanceof JobInputError)) throw error;
    console.log(`refused: ${error.message}`);
  }
}

main()
  .catch((error) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(closeDefaultClient);
