// Shared by the client scripts: command line, the weather tool's result, and JSON output.
//
// Usage: node <script>.mjs <proxy base URL with /v1> <scenario> <scenario data as JSON>
// The data (model, questions, tool definition, temperatures) comes from tests/clients/scenarios.py,
// so the Python and Node clients drive identical conversations.

export function parseArgs() {
  const [baseURL, scenario, data] = process.argv.slice(2);
  if (!baseURL || !scenario || !data) {
    throw new Error('usage: node <script>.mjs <base URL> <scenario> <scenario JSON>');
  }
  return { baseURL, scenario, data: JSON.parse(data) };
}

export function weather(data, city) {
  return { city, temp_c: data.temperatures[city] };
}

export function describeError(error) {
  return {
    name: error?.constructor?.name ?? typeof error,
    message: String(error?.message ?? error),
    status: error?.status ?? null,
  };
}

// Run the named scenario and print its JSON result; an unexpected exception fails the process.
export async function main(scenarios) {
  const { baseURL, scenario, data } = parseArgs();
  const run = scenarios[scenario];
  if (!run) throw new Error(`unknown scenario ${scenario}`);
  const result = await run(baseURL, data);
  process.stdout.write(JSON.stringify(result) + '\n');
}
