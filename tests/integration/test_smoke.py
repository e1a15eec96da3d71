"""The quick tier's one real-server test (`./lab test --quick`): the lab's chat server starts
(or is reused), answers a plain OpenAI chat request with its key, and refuses one without.

The whole run has deeper tests of each of these; this one exists so the inner loop touches a
real vLLM once in about a minute.
"""

from __future__ import annotations

import httpx
import openai
import pytest

pytestmark = pytest.mark.integration


def test_a_real_server_answers_with_its_key_and_refuses_without(chat_srv):
    plain = openai.OpenAI(base_url=f"{chat_srv.base_url}/v1", api_key=chat_srv.api_key)
    reply = plain.chat.completions.create(
        model=chat_srv.model_name, max_tokens=8, temperature=0,
        messages=[{"role": "user", "content": "Say hello."}])
    assert reply.choices[0].message.content
    assert reply.usage is not None and 0 < reply.usage.completion_tokens <= 8
    assert httpx.get(f"{chat_srv.base_url}/health", timeout=10).status_code == 200
    refused = httpx.post(f"{chat_srv.base_url}/v1/chat/completions", timeout=10, json={
        "model": chat_srv.model_name, "messages": [{"role": "user", "content": "hi"}]})
    assert refused.status_code == 401
