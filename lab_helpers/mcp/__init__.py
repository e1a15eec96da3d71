"""Module 4: MCP servers and the client bridge that hands their tools to the model.

- `acme_server`: ACME's support desk as an MCP server (`vllm-lab mcp serve`, stdio or HTTP);
- `servers`: installing and starting the three servers of the module (ACME, Time, Filesystem);
- `bridge`: `McpBridge`, several servers at once behind a blocking API, their tools as the
  lab's `ToolRegistry`;
- `agent`: `McpAgent`, module 3's tool loop over the MCP tools, every call through the
  approval gate (`lab_helpers.approval`).
"""
