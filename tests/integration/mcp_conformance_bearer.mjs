// Preloaded into the MCP conformance suite (`node --import <this file> <suite> server ...`) by
// tests/integration/test_mcp_conformance.py: every HTTP request the suite sends to the server
// under test carries `Authorization: Bearer <token>`.
//
// Why a preload: the suite (0.1.16) has no option or variable for headers. Its server mode
// builds `new StreamableHTTPClientTransport(new URL(url))` without `requestInit`, and some
// scenarios send raw requests (`fetch`, undici's `request`) with fixed headers. All of those go
// through undici's global dispatcher, shared by Node's fetch and the npm `undici` package (a
// symbol on globalThis), so one dispatcher set here reaches all of them.
//
// Environment: MCP_CONFORMANCE_TOKEN_FILE (the token, read here: never on a command line),
// MCP_CONFORMANCE_ORIGIN (e.g. http://127.0.0.1:18931: only requests to it get the header),
// MCP_CONFORMANCE_ENTRY (the suite's dist/index.js: its own undici is loaded from there).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const env = process.env;
const token = readFileSync(env.MCP_CONFORMANCE_TOKEN_FILE, "utf8").trim();
if (!token) throw new Error(`${env.MCP_CONFORMANCE_TOKEN_FILE} holds no token`);
const origin = new URL(env.MCP_CONFORMANCE_ORIGIN).origin;
const { Agent, setGlobalDispatcher } = createRequire(env.MCP_CONFORMANCE_ENTRY)("undici");
const value = `Bearer ${token}`;

function withToken(headers) {
  if (headers == null) return { authorization: value };
  if (Array.isArray(headers)) {
    // [name, value, name, value, ...] (or [[name, value], ...]): drop any authorization first.
    const flat = Array.isArray(headers[0]) ? headers.flat() : [...headers];
    const kept = [];
    for (let i = 0; i < flat.length; i += 2) {
      if (String(flat[i]).toLowerCase() !== "authorization") kept.push(flat[i], flat[i + 1]);
    }
    return [...kept, "authorization", value];
  }
  const kept = Object.fromEntries(
    Object.entries(headers).filter(([name]) => name.toLowerCase() !== "authorization"));
  return { ...kept, authorization: value };
}

setGlobalDispatcher(new Agent().compose((dispatch) => (opts, handler) => {
  const target = new URL(String(opts.origin)).origin;
  return dispatch(target === origin ? { ...opts, headers: withToken(opts.headers) } : opts,
                  handler);
}));
