"""The ticket experiment: the same messages, asked for JSON in words vs. under the schema.

    frame = run_ticket_experiment(StructuredClient(srv, max_tokens=160))
    table = summarize(frame)          # parse rate, schema-valid rate, latency, field accuracy
    plot_summary(table)

Both sides send the same system prompt (which describes the ticket in words) and the same user
message; only the constrained side carries the schema. Each side runs as its own phase with the
same number of requests in flight, so their latencies were measured under the same load.
"Parsed" means the *whole* answer is JSON, which is what a program reading it needs;
`json_found` is a lenient reader's view (JSON inside a ``` fence or prose), for comparison.
Field accuracy scores `ticket_type` and `priority` against the hand-assigned labels: a valid
ticket with the wrong category counts as wrong, and an invalid answer as wrong too.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from .constraints import Constraint, json_schema
from .presets import (
    TICKET_SCHEMA,
    TICKET_SYSTEM_PROMPT,
    LabelledMessage,
    support_messages,
    ticket_prompt,
)
from .verdicts import extract_json

if TYPE_CHECKING:
    import pandas as pd

    from .client import StructuredClient

MODES = ("unconstrained", "constrained")


def run_ticket_experiment(client: StructuredClient,
                          messages: list[LabelledMessage] | None = None, *,
                          constraint: Constraint | None = None,
                          concurrency: int = 4, progress: bool = True) -> pd.DataFrame:
    """One row per message and side: the answer, its verdict, latency and field scores.

    A progress bar counts the answers (both sides: a minute or two on the CPU profile).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    messages = support_messages() if messages is None else messages
    constraint = constraint or json_schema(TICKET_SCHEMA, name="support_ticket")
    rows: list[dict[str, Any]] = []
    bar = tqdm(total=len(MODES) * len(messages), desc="answers", unit="answer",
               disable=not progress)
    for mode in MODES:
        def one(message: LabelledMessage, mode: str = mode) -> dict[str, Any]:
            result = client.run(ticket_prompt(message.text),
                                constraint if mode == "constrained" else None,
                                check=constraint, system_prompt=TICKET_SYSTEM_PROMPT)
            verdict = result.verdict
            assert verdict is not None
            value = verdict.value if verdict.parsed else extract_json(result.text)
            fields = value if isinstance(value, dict) else {}
            return {
                "mode": mode, "message": message.text, "answer": result.text,
                "parsed": verdict.parsed, "json_found": isinstance(value, dict),
                "valid": verdict.valid, "reason": verdict.reason,
                "latency_s": result.latency_s, "completion_tokens": result.completion_tokens,
                "finish_reason": result.finish_reason,
                "expected_type": message.ticket_type, "ticket_type": fields.get("ticket_type"),
                "expected_priority": message.priority, "priority": fields.get("priority"),
                "type_right": verdict.valid and fields.get("ticket_type") == message.ticket_type,
                "priority_right": verdict.valid and fields.get("priority") == message.priority,
            }

        def counted(message: LabelledMessage) -> dict[str, Any]:
            row = one(message)
            bar.update()
            return row

        with ThreadPoolExecutor(max(1, concurrency)) as pool:
            rows.extend(pool.map(counted, messages))
    bar.close()
    return pd.DataFrame(rows)


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Per side: rates in percent, latency in seconds, field accuracy in percent."""
    grouped = frame.groupby("mode", sort=False)
    table = grouped.agg(
        requests=("valid", "size"),
        parse_rate=("parsed", "mean"),
        json_found_rate=("json_found", "mean"),
        schema_valid_rate=("valid", "mean"),
        latency_median_s=("latency_s", "median"),
        latency_mean_s=("latency_s", "mean"),
        completion_tokens_mean=("completion_tokens", "mean"),
        cut_at_max_tokens=("finish_reason", lambda s: int((s == "length").sum())),
        type_accuracy=("type_right", "mean"),
        priority_accuracy=("priority_right", "mean"),
    )
    for column in ("parse_rate", "json_found_rate", "schema_valid_rate", "type_accuracy",
                   "priority_accuracy"):
        table[column] = (100 * table[column]).round(1)
    return table.reindex([m for m in MODES if m in table.index])


def plot_summary(table: pd.DataFrame) -> Any:
    """Bars: parse rate, schema-valid rate (%), median latency (s), field accuracy (%)."""
    import matplotlib.pyplot as plt

    panels = [("parse_rate", "parsed as JSON (%)"), ("schema_valid_rate", "schema-valid (%)"),
              ("latency_median_s", "median latency (s)"),
              ("type_accuracy", "ticket_type right (%)")]
    fig, axes = plt.subplots(1, len(panels), figsize=(14, 3.2))
    colors = ["#999999", "#1f77b4"]
    for ax, (column, title) in zip(axes, panels, strict=True):
        values = table[column]
        bars = ax.bar(list(table.index), values, color=colors[:len(values)])
        ax.bar_label(bars, fmt="%.1f")
        ax.set_title(title)
        if column != "latency_median_s":
            ax.set_ylim(0, 110)
    fig.tight_layout()
    return fig
