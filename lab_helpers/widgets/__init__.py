"""The lab's notebook widgets. Each is a view on a plain-Python model object:

- `ChatWidget` on a `lab_helpers.chat.ChatSession`
- `ServerPanel` on the lab servers (`lab_helpers.server`)
- `MetricsView` on a `lab_helpers.metrics.MetricsRecorder`

Long work (streaming, starting servers, sampling, plotting) runs on threads; the widgets show
results and errors in their own values and never print.

May import: the models they show (`chat`, `metrics`, `server`, `structured`, `tools`
with its approval gate, `mcp`) and `errors`; nothing imports the widgets.
"""

from __future__ import annotations

from .chat import ChatWidget
from .metrics_view import MetricsView
from .schema_editor import SchemaEditor as SchemaEditor
from .server_panel import ServerPanel
from .tool_transcript import TranscriptView as TranscriptView

__all__ = ["ChatWidget", "MetricsView", "ServerPanel"]
