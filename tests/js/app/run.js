// Runs a bundle built from src/ under the Node SDK, pointed at the DSN in
// SENTRY_DSN: its `run()` throws, the SDK sends the error; prints the
// event id.
const Sentry = require("@sentry/node");

async function main() {
  Sentry.init({ dsn: process.env.SENTRY_DSN, release: process.env.SENTRY_RELEASE });
  const app = require(process.argv[2]);
  let id;
  try {
    app.run();
  } catch (error) {
    id = Sentry.captureException(error);
  }
  if (!(await Sentry.flush(10000))) {
    throw new Error("the SDK did not deliver the event in time");
  }
  console.log(id);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
