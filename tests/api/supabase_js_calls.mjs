// Calls the API the way a browser or Node app does with supabase-js: functions.invoke(name, ...).
// Input (stdin, JSON): {url, anonKey, calls: [{name, jwt?, body?, method?}]}.
// Output (stdout, JSON): one {data} or {error: {name, status, body}} per call, in order.
import { createClient } from "@supabase/supabase-js";
import ws from "ws";    // Node 20 has no WebSocket of its own, and the client builds its realtime part up front

const input = JSON.parse(await new Promise((resolve) => {
  let text = "";
  process.stdin.on("data", (chunk) => { text += chunk; });
  process.stdin.on("end", () => resolve(text));
}));

const results = [];
for (const call of input.calls) {
  // a signed-in user's token (third-party auth style), or the anon key alone
  const options = { realtime: { transport: ws }, ...(call.jwt ? { accessToken: async () => call.jwt } : {}) };
  const supabase = createClient(input.url, input.anonKey, options);
  const invokeOptions = {};
  if (call.body !== undefined) invokeOptions.body = call.body;
  if (call.method) invokeOptions.method = call.method;
  const { data, error } = await supabase.functions.invoke(call.name, invokeOptions);
  if (error) {
    let body = null;
    if (error.context && typeof error.context.json === "function") body = await error.context.json();
    results.push({ error: { name: error.name, status: error.context ? error.context.status : null, body } });
  } else {
    results.push({ data });
  }
}
process.stdout.write(JSON.stringify(results));
