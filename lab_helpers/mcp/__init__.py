"""Module 4: MCP servers and the client bridge that hands their tools to the model.

- `acme_server`: ACME's support desk as an MCP server (`vllm-lab mcp serve`, stdio or HTTP);
- `servers`: installing and starting the three servers of the module (ACME, Time, Filesystem)
  and installing the official conformance suite the tests run;
- `spec`: `McpServerSpec` (how to reach a server, and whether the lab trusts its annotations)
  and the bridge's errors;
- `tokens`: the ACME HTTP server's bearer token, in a 0600 file in the lab home;
- `schemas`: an MCP input schema in OpenAI's strict form;
- `bridge`: `McpBridge`, several servers at once behind a blocking API, their tools as the
  lab's `ToolRegistry`;
- `agent`: `McpAgent`, module 3's tool loop over the MCP tools, every call through the
  approval gate (`lab_helpers.tools.approval`).

May import: `tools` (with its approval gate), `support` (the ACME server's backend), `server`,
`connect` (the agent's batches), `errors`, `paths`.
"""
