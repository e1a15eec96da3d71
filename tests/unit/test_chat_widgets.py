"""Chat session, metrics and widgets without a vLLM server.

A closed port stands in for a dead server, and the /metrics parser reads a text with two
engines (which a 2-core server never shows); everything that needs a real vLLM server lives in
tests/integration/test_chat.py.
"""

from __future__ import annotations

import threading
import time

import pytest

from lab_helpers.chat import (
    ChatInputError,
    ChatSession,
    ChatTurn,
    ContextLimitExceeded,
    Endpoint,
    ReplyStats,
    ServerUnavailable,
)
from lab_helpers.errors import LabError
from lab_helpers.metrics import MetricsRecorder, parse_metrics, plot_metrics
from lab_helpers.paths import models_dir
from lab_helpers.server import free_port
from lab_helpers.server.config import ServerConfig
from lab_helpers.widgets import ChatWidget, MetricsView, ServerPanel

MODEL = "smollm2-135m-instruct"
TEST_LAB_MODELS = models_dir()  # read before any test points VLLM_LAB_HOME elsewhere

METRICS_TEXT = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{{engine="0",model_name="{m}"}} 1.0
vllm:num_requests_running{{engine="1",model_name="{m}"}} 2.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{{engine="0",model_name="{m}"}} 3.0
vllm:num_requests_waiting{{engine="1",model_name="{m}"}} 0.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{{engine="0",model_name="{m}"}} 0.25
vllm:kv_cache_usage_perc{{engine="1",model_name="{m}"}} 0.75
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{{engine="0",model_name="{m}"}} 50.0
vllm:prompt_tokens_total{{engine="1",model_name="{m}"}} 2.0
# HELP vllm:prompt_tokens_created Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_created gauge
vllm:prompt_tokens_created{{engine="0",model_name="{m}"}} 1.7e+09
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{{engine="0",model_name="{m}"}} {gen}
vllm:generation_tokens_total{{engine="1",model_name="{m}"}} 0.0
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{{engine="0",le="0.1",model_name="{m}"}} 1.0
vllm:time_to_first_token_seconds_bucket{{engine="0",le="0.25",model_name="{m}"}} 3.0
vllm:time_to_first_token_seconds_bucket{{engine="0",le="+Inf",model_name="{m}"}} 4.0
vllm:time_to_first_token_seconds_count{{engine="0",model_name="{m}"}} 4.0
vllm:time_to_first_token_seconds_sum{{engine="0",model_name="{m}"}} 0.8
# HELP python_gc_objects_collected_total Objects collected during gc
# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{{generation="0"}} 1234.0
"""


def metrics_text(generated: float = 19.0) -> str:
    return METRICS_TEXT.format(m=MODEL, gen=generated)


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def dead_url() -> str:
    """A URL where nothing listens: connection refused at once, like a stopped server."""
    return f"http://127.0.0.1:{free_port()}"


def offline_session(url: str, **kwargs: object) -> ChatSession:
    return ChatSession(base_url=url, api_key="k", model=MODEL, **kwargs)  # type: ignore[arg-type]


# -- ChatSession without a server ---------------------------------------------------------------


def test_session_construction_sends_nothing(dead_url):
    session = offline_session(f"{dead_url}/v1/", temperature=0.2, max_tokens=64)
    assert session.base_url == dead_url  # /v1 and the slash are stripped
    assert session.model == MODEL and session.history == ()
    assert not session.is_generating and session.last_stats is None


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_message_is_refused_and_history_unchanged(dead_url, text):
    session = offline_session(dead_url)
    with pytest.raises(ChatInputError) as info:
        session.send(text)
    assert isinstance(info.value, ValueError) and isinstance(info.value, LabError)
    assert "empty" in str(info.value)
    assert session.history == ()


@pytest.mark.parametrize("setting, value", [
    ("temperature", -0.1), ("temperature", 2.5), ("top_p", 0.0), ("top_p", 1.5),
    ("max_tokens", 0), ("max_tokens", 1.5), ("max_tokens", True),
])
def test_invalid_settings_are_refused(dead_url, setting, value):
    session = offline_session(dead_url)
    before = getattr(session, setting)
    with pytest.raises(ChatInputError):
        setattr(session, setting, value)
    assert getattr(session, setting) == before
    with pytest.raises(ChatInputError):
        offline_session(dead_url, **{setting: value})


def test_unreachable_server_raises_with_fix_and_keeps_history(dead_url):
    session = offline_session(dead_url)
    with pytest.raises(ServerUnavailable) as info:
        session.send("Where is my order?")
    error = info.value
    assert "vllm-lab up" in error.fix
    assert error.unsent == "Where is my order?"
    assert session.history == () and not session.is_generating


def test_messages_include_system_prompt_and_stopped_answers(dead_url):
    session = offline_session(dead_url, system_prompt="Be brief.")
    session._history = [  # what two finished turns leave behind
        ChatTurn(user="a", answer="b", status="done", model=MODEL),
        ChatTurn(user="c", answer="partial", status="stopped", model=MODEL),
    ]
    assert session.messages("next") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"}, {"role": "assistant", "content": "partial"},
        {"role": "user", "content": "next"},
    ]
    session.system_prompt = "  "
    assert session.messages()[0] == {"role": "user", "content": "a"}
    session.clear()
    assert session.history == () and session.messages() == []


def test_context_limit_error_names_the_limit(dead_url):
    session = offline_session(dead_url, max_tokens=9000)
    session.target.limits[MODEL] = 8192  # as if read from GET /v1/models
    with pytest.raises(ContextLimitExceeded) as info:
        session.send("hi")
    assert "8192" in str(info.value) and "max_tokens=9000" in str(info.value)
    assert session.history == ()


# -- ReplyStats -------------------------------------------------------------------------------


def test_reply_stats_tokens_per_second_is_over_the_decode_phase():
    stats = ReplyStats(ttft_s=0.2, decode_s=2.0, total_s=2.3, prompt_tokens=30,
                       completion_tokens=41, chunks=41, finish_reason="length", total_tokens=71)
    assert stats.tokens_per_s == pytest.approx(20.0)  # 40 tokens after the first, in 2 s
    line = stats.summary()
    assert "TTFT 0.20 s" in line and "20.0 tok/s" in line
    assert "30 prompt + 41 completion = 71 tokens" in line and "max_tokens" in line


@pytest.mark.parametrize("completion, decode", [(None, 1.0), (1, 1.0), (5, 0.0)])
def test_reply_stats_without_a_rate(completion, decode):
    stats = ReplyStats(ttft_s=0.1, decode_s=decode, total_s=1.2, prompt_tokens=None,
                       completion_tokens=completion, stopped=True)
    assert stats.tokens_per_s is None
    assert "n/a" in stats.summary() and "stopped" in stats.summary()


# -- ChatWidget -------------------------------------------------------------------------------


def test_chat_widget_builds_with_a_session(dead_url):
    session = offline_session(dead_url, temperature=0.3, top_p=0.9, max_tokens=77)
    widget = ChatWidget(session, endpoints=[session.endpoint])
    assert widget.session is session and not widget.busy
    inputs = widget.controls
    assert (inputs.temperature.value, inputs.top_p.value, inputs.max_tokens.value) == \
        (0.3, 0.9, 77)
    assert widget.controls.model.layout.display == "none"  # one server: no picker
    assert widget.controls.stop.disabled and not widget.controls.send.disabled
    widget.controls.temperature.value = 1.1
    widget.controls.max_tokens.value = 12
    widget.controls.system.value = "You are terse."
    assert (session.temperature, session.max_tokens, session.system_prompt) == \
        (1.1, 12, "You are terse.")


def test_model_picker_lists_servers_and_switches(dead_url):
    session = offline_session(dead_url)
    other = Endpoint("http://127.0.0.1:9", "k2", "other-model", "chat-b")
    widget = ChatWidget(session, endpoints=[session.endpoint, other])
    assert widget.controls.model.layout.display != "none"
    assert [label for label, _ in widget.controls.model.options] == [
        f"{MODEL} ({dead_url})", "other-model (chat-b)"]
    widget.controls.model.value = other
    assert session.endpoint == other and session.model == "other-model"
    assert "other-model" in widget.status


def test_model_picker_keeps_the_current_server_first(dead_url):
    session = offline_session(dead_url)
    other = Endpoint("http://127.0.0.1:9", "k2", "other-model", "chat-b")
    widget = ChatWidget(session, endpoints=[other])
    assert [e for _, e in widget.controls.model.options] == [session.endpoint, other]
    assert widget.controls.model.value == session.endpoint


def test_empty_message_shows_in_widget_and_history_unchanged(dead_url):
    widget = ChatWidget(offline_session(dead_url), endpoints=[])
    widget.controls.message.value = "   "
    widget.controls.send.click()
    assert widget.wait(10)
    assert "empty" in widget.status and "Traceback" not in widget.status
    assert widget.session.history == ()
    assert widget.controls.message.value == "   " and not widget.controls.send.disabled


def test_dead_server_shows_what_to_do_and_keeps_the_message(dead_url):
    widget = ChatWidget(offline_session(dead_url), endpoints=[])
    widget.controls.message.value = "Where is my order?"
    widget.controls.send.click()
    assert widget.wait(15)
    assert "vllm-lab up" in widget.status and "Traceback" not in widget.status
    assert widget.controls.message.value == "Where is my order?"  # ready to resend
    assert widget.session.history == () and widget.answer == ""
    assert not widget.controls.send.disabled and widget.controls.stop.disabled


def test_widget_without_a_running_server_says_how_to_start_one(monkeypatch):
    monkeypatch.setattr(ChatSession, "lab_endpoints", staticmethod(list))
    widget = ChatWidget(endpoints=[])
    assert widget.session is None
    assert "vllm-lab up" in widget.status and widget.controls.send.disabled
    widget.controls.send.click()  # must not raise
    assert widget.session is None


def test_callback_errors_are_shown_not_raised(dead_url):
    widget = ChatWidget(offline_session(dead_url), endpoints=[])
    slider = widget.controls.temperature
    slider.max = 5.0  # the slider stops at 2.0; a bad value that gets through still must not
    slider.value = 5.0  # raise: the session refuses it and the widget says why
    assert "temperature" in widget.status and "outside" in widget.status


# -- metrics ----------------------------------------------------------------------------------


def test_parse_metrics_sums_engines_and_reads_the_histogram():
    models = parse_metrics(metrics_text(19.0))
    assert list(models) == [MODEL]
    m = models[MODEL]
    assert m.kv_cache_usage == pytest.approx(0.5) and m.kv_cache_usage_pct == pytest.approx(50)
    assert (m.requests_running, m.requests_waiting) == (3.0, 3.0)
    assert (m.prompt_tokens_total, m.generation_tokens_total) == (52.0, 19.0)
    assert m.ttft is not None and m.ttft.count == 4.0 and m.ttft.mean == pytest.approx(0.2)
    assert m.ttft.buckets[-1] == (float("inf"), 4.0)


def test_recorder_survives_a_dead_server(dead_url):
    recorder = MetricsRecorder(dead_url, interval=0.1, timeout=1.0)
    assert recorder.sample() is None and "Cannot read" in recorder.last_error
    assert recorder.frame().empty
    assert len(plot_metrics(recorder.frame()).axes) == 6


def test_metrics_view_on_a_missing_server_shows_a_message(lab_home):
    view = MetricsView("no-such-server")
    assert view.recorder is None and "vllm-lab up" in view.message
    view.controls.record.value = True
    assert not view.controls.record.value and not view.recording


# -- ServerPanel ------------------------------------------------------------------------------


def test_server_panel_rows_and_a_failed_start_shows_the_fix(lab_home, tmp_path):
    config = ServerConfig(model=str(tmp_path / "missing-model"), name="panel-test",
                          port=free_port())
    panel = ServerPanel([config], runtime="local", poll_interval=None)
    try:
        row = panel.rows["panel-test"]
        buttons = row.controls
        assert row.state == "stopped" and not buttons.start.disabled and buttons.stop.disabled
        assert "--model" in row.preview
        row.controls.start.click()
        assert row.wait(30)
        assert "does not exist" in row.message and "vllm-lab prepare-models" in row.message
        assert "Traceback" not in row.message and row.state == "stopped"
    finally:
        panel.close()
    assert not panel.polling


def test_server_panel_polls_until_closed(lab_home, tiny_model_dir):
    config = ServerConfig(model=str(tiny_model_dir), name="panel-poll", port=free_port())
    panel = ServerPanel([config], runtime="local", poll_interval=0.05)
    assert panel.polling
    panel.close()
    assert not panel.polling


def test_a_new_panel_for_the_same_servers_stops_the_old_poller(lab_home, tiny_model_dir):
    """Issue 6: re-running the cell left the old panel polling forever."""
    config = ServerConfig(model=str(tiny_model_dir), name="panel-again", port=free_port())
    first = ServerPanel([config], runtime="local", poll_interval=0.05)
    other = ServerPanel([config.replace(name="panel-other")], runtime="local",
                        poll_interval=0.05)
    try:
        assert first.polling and other.polling
        second = ServerPanel([config], runtime="local", poll_interval=0.05)
        assert second.polling and not first.polling
        assert "newer panel" in first.message
        assert other.polling  # a panel for other servers is left alone
        polls = [t for t in threading.enumerate() if t.name == "vllm-lab-server-panel"]
        assert len(polls) == 2
    finally:
        for panel in (first, other, second):
            panel.close()
    assert not any(t.name == "vllm-lab-server-panel" and t.is_alive()
                   for t in threading.enumerate())


def test_panel_backs_off_while_nothing_changes_and_speeds_up_on_a_click(lab_home,
                                                                        tiny_model_dir):
    config = ServerConfig(model=str(tiny_model_dir), name="panel-idle", port=free_port())
    panel = ServerPanel([config], runtime="local", poll_interval=0.05, max_poll_interval=0.4)
    try:
        assert wait_until(lambda: panel.poll_delay == 0.4, 5)
        before = panel.refreshes
        time.sleep(1.0)
        # At 0.05 s it would have refreshed ~20 times; backed off to 0.4 s, at most ~3.
        assert panel.refreshes - before <= 4
        panel.controls.refresh.click()
        assert panel.poll_delay == 0.05
    finally:
        panel.close()


def test_refresh_reports_changes_only(lab_home, tiny_model_dir):
    config = ServerConfig(model=str(tiny_model_dir), name="panel-sig", port=free_port())
    panel = ServerPanel([config], runtime="local", poll_interval=None)
    try:
        assert panel.refresh() is False  # same as the refresh done when it was built
        row = panel.rows["panel-sig"]
        row.controls.show_log.value = True
        row.show_log("new line")
        assert panel.refresh() is True
    finally:
        panel.close()


def test_panel_model_picker_offers_the_catalog_with_reasons(lab_home, tiny_model_dir):
    from lab_helpers.server.catalog import CATALOG

    # The picked bundled model must be prepared: share the test lab's prepared models.
    lab_home.mkdir(parents=True, exist_ok=True)
    (lab_home / "models").symlink_to(TEST_LAB_MODELS, target_is_directory=True)

    config = ServerConfig(model=str(tiny_model_dir), name="chat", port=free_port())
    panel = ServerPanel([config], runtime="local", poll_interval=None)
    try:
        choices = {key: (ok, why) for key, ok, why in panel.model_choices}
        assert list(choices) == [e.key for e in CATALOG]
        assert choices["smollm2-135m-instruct"][0]
        gpu_entry = "meta-llama/Llama-3.1-8B-Instruct"
        if not choices[gpu_entry][0]:  # this machine: no GPU
            panel.picker.controls.pick.value = gpu_entry
            assert panel.picker.controls.use.disabled and "GPU" in panel.picker.message
        panel.picker.controls.pick.value = "smollm2-135m-instruct"
        assert not panel.picker.controls.use.disabled
        panel.picker.controls.use.click()
        row = panel.rows["chat"]
        assert row.config.served_model_name == "smollm2-135m-instruct"
        assert row.config.port == config.port and "--tool-call-parser" in row.preview
    finally:
        panel.close()


# -- presets, Markdown, export (no server needed) ----------------------------------------------


def test_preset_picker_sets_the_system_prompt_and_follows_edits(dead_url):
    from lab_helpers.chat.presets import SYSTEM_PRESETS

    session = offline_session(dead_url)
    widget = ChatWidget(session, endpoints=[session.endpoint])
    assert widget.preset == "Default"
    widget.controls.preset.value = "ACME support agent"
    assert session.system_prompt == SYSTEM_PRESETS["ACME support agent"]
    assert widget.controls.system.value == session.system_prompt
    widget.controls.system.value = "You are a pirate."
    assert widget.preset == "Custom" and session.system_prompt == "You are a pirate."
    widget.controls.preset.value = "JSON only"
    assert "JSON" in session.system_prompt


def test_markdown_is_rendered_and_raw_html_is_not():
    from lab_helpers.widgets.markdown_html import render_markdown

    out = render_markdown("# Title\n\n- **bold** item\n\n```python\nprint('x')\n```\n"
                          "<script>alert(1)</script>")
    assert "<h1>Title</h1>" in out and "<strong>bold</strong>" in out
    assert '<pre><code class="language-python">' in out
    assert "<script>" not in out and "&lt;script&gt;" in out


def test_export_of_an_empty_conversation(dead_url):
    import json

    session = offline_session(dead_url, system_prompt="Be brief.")
    data = json.loads(session.export_json())
    assert data["turns"] == [] and data["system_prompt"] == "Be brief."
    assert data["settings"]["max_tokens"] == session.max_tokens
    assert session.export_markdown().startswith(f"# Conversation with {MODEL}")
    widget = ChatWidget(session, endpoints=[session.endpoint])
    widget.controls.export.click()
    assert 'download="conversation-' in widget.downloads and ".json" in widget.downloads
    assert ".md" in widget.downloads
