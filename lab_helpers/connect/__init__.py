"""The one way the lab reaches a server: its key, its timeouts, its retries, its errors.

    from lab_helpers.connect import Connection

    conn = Connection.of("chat")              # a lab server by name, a Server, or a URL (+ api_key)
    reply = conn.request(lambda client: client.chat.completions.create(
        model="smollm2-135m-instruct", messages=[{"role": "user", "content": "Hi"}]))
    conn.get("/metrics").text                 # an authenticated GET, same rules
    conn.served_models()                      # {"smollm2-135m-instruct": 8192}

Every helper that talks to a lab server (ChatSession, StructuredClient, ToolLoop, logprobs,
metrics, the benchmark's pre-check, the semantic search) gets its client here; none builds
`OpenAI(...)` itself. `Server.client()` stays the plain client a learner writes by hand.

The policy, the same for all of them:

- **Key.** A lab server's key is read from its key file (`servers/<name>.key`) when the
  connection is made and kept. A 401 makes the connection read the file again, *once*: a
  replaced server (a restart, a config change under the same name) wrote a new key, and the
  request is sent again with it. Only if the file holds a new key: a second 401 with the same
  key would fail the same way. A key given by hand (`api_key=`) is never re-read.
- **Timeouts.** Connect: 5 s, because a lab server is local (or in the room): it accepts at
  once or it is not there, and "start it again" should not wait. Read (the longest silence
  between two bytes): 300 s for model requests, because a 2-core machine queues requests
  behind a benchmark or a batch of tool loops and the first token can take minutes; a
  streamed answer is never cut by it while tokens arrive. 10 s for the small routes
  (/v1/models, /tokenize, /metrics): the API process answers them without the engine.
- **Retries.** None by the SDK (`max_retries=0`). A refused connection means the server is
  stopped, and backing off only hides that for seconds; a timed-out or failed generation
  resent would queue the same work again on a machine that is already too busy. The one
  retry is the 401 one above: the only failure a second attempt fixes.
- **After a failure** to reach a lab server, its next request finds it again first (by name:
  it may be back on another port) and says at once if it is not running.
- **Errors** pass through `translate`, the one translator: every `openai` and `httpx` failure
  becomes a `ServerRequestError` (a `LabError`: what failed, the likely cause, the fix).
  ServerUnavailable: unreachable, timed out, 5xx, died mid-answer (also an answer whose last
  finish reason is not one of a complete answer: `require_finished`, for vLLM's "abort" when
  it shuts down). KeyRejected: 401 after the re-read. RequestRejected: another 4xx, with the
  server's own `reason` (ModelNotServed for a model the server does not serve).

`connection` holds `Connection`; `errors` the errors and `translate`. May import: `errors`,
`server` (the key file, finding a server by name).
"""

from __future__ import annotations

from .connection import CONNECT_TIMEOUT_S, QUICK_TIMEOUT_S, READ_TIMEOUT_S, Connection
from .errors import (
    DEFAULT_SERVER,
    FINISHED,
    REJECTED,
    RESTART_FIX,
    AnswerCut,
    Hint,
    KeyRejected,
    ModelNotServed,
    RequestRejected,
    ServerRequestError,
    ServerUnavailable,
    api_error_message,
    not_served,
    require_finished,
    restart_fix,
    status_of,
    translate,
)

__all__ = [
    "CONNECT_TIMEOUT_S", "DEFAULT_SERVER", "FINISHED", "QUICK_TIMEOUT_S", "READ_TIMEOUT_S",
    "REJECTED", "RESTART_FIX", "AnswerCut", "Connection", "Hint", "KeyRejected",
    "ModelNotServed", "RequestRejected",
    "ServerRequestError", "ServerUnavailable", "api_error_message", "not_served",
    "require_finished", "restart_fix", "status_of", "translate",
]
