"""One contract for every `Model`: local llama.cpp, a real OpenAI-compatible server on loopback,
and the per-user model host that front-ends share.

The server is llama-cpp-python's own (`python -m llama_cpp.server`) serving the same tiny GGUF,
so RemoteModel is tested against real HTTP streaming, not a mock; the host is the real host
process (`python -m assistant.llm.host`) on its Unix socket.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import free_port, llama_cpp_server, self_signed_certificate

from assistant.config import ModelSettings
from assistant.errors import AssistError
from assistant.llm.chat_templates import Message
from assistant.llm.fim import Hole
from assistant.llm.hosting import HostedModel
from assistant.llm.local import LocalModel
from assistant.llm.protocol import Model, Request
from assistant.llm.remote import RemoteModel


@pytest.fixture(scope="module")
def server_url(chat_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("server") / "server.log"
    with llama_cpp_server(chat_gguf, log, "--n_ctx", "512") as url:
        yield url + "/v1"


@pytest.fixture(params=["local", "remote", "hosted"])
def model(request: pytest.FixtureRequest, chat_gguf: Path) -> Model:
    settings = ModelSettings(temperature=0.0, max_tokens=16)
    if request.param == "local":
        return LocalModel.load(chat_gguf, settings)
    if request.param == "hosted":
        return HostedModel(str(chat_gguf), settings)
    return RemoteModel(request.getfixturevalue("server_url"), settings)


def test_chat_streams(model: Model) -> None:
    request = Request(max_tokens=5)
    pieces = list(model.chat([Message("user", "hello")], request))
    assert pieces == ["a"] * 5
    assert request.stats.generated_tokens == 5
    assert request.stats.prompt_ms > 0


def test_complete_streams_and_honours_stop(model: Model) -> None:
    assert "".join(model.complete("hello", Request(max_tokens=6))) == "a" * 6
    assert "".join(model.complete("hello", Request(max_tokens=6, stop=("aaa",)))) == ""


# How each fills a hole with the tiny Qwen-named GGUF (the kind, and how its label starts): its
# FIM tokens in-process and through the host; llama-cpp-python's server has no /infill, so the
# remote model emulates.
QWEN_TOKENS = "qwen (<|fim_prefix|> <|fim_suffix|> <|fim_middle|>; from metadata)"
FIM = {
    "local": ("tokens", QWEN_TOKENS),
    "hosted": ("tokens", QWEN_TOKENS),
    "remote": ("emulated", "emulated (server has no /infill"),
}


def test_infill_returns_text(model: Model, request: pytest.FixtureRequest) -> None:
    out = "".join(model.infill(Hole("x = ", "\n", path="a.py"), Request(max_tokens=4)))
    assert out == "aaaa"
    kind, label = FIM[request.node.callspec.params["model"]]
    assert model.fim_kind == kind
    assert model.fim_label.startswith(label), model.fim_label


def test_cancel(model: Model) -> None:
    cancel = threading.Event()
    request = Request(max_tokens=64, cancel=cancel)
    out = []
    for piece in model.chat([Message("user", "hello")], request):
        out.append(piece)
        cancel.set()
    assert out == ["a"]
    assert request.stats.stopped_by == "cancel"


def test_each_request_keeps_its_own_stats(model: Model) -> None:
    """Two requests in turn on one model: each reads its own figures, not the last one's."""
    first, second = Request(max_tokens=3), Request(max_tokens=5)
    assert "".join(model.complete("hello", first)) == "aaa"
    assert "".join(model.complete("hello world", second)) == "aaaaa"
    assert (first.stats.generated_tokens, second.stats.generated_tokens) == (3, 5)


def test_unreachable_server_is_a_clear_error() -> None:
    remote = RemoteModel(f"http://127.0.0.1:{free_port()}/v1", ModelSettings(timeout=5))
    with pytest.raises(AssistError, match="cannot reach the model server"):
        list(remote.chat([Message("user", "hi")]))


def test_http_error_is_a_clear_error(server_url: str) -> None:
    remote = RemoteModel(server_url + "/nothing-here", ModelSettings())
    with pytest.raises(AssistError, match="HTTP 404"):
        list(remote.complete("hi"))


KEY = "sk-test-0123456789"


@pytest.fixture(scope="module")
def secured_url(
    chat_gguf: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """The same server over HTTPS with a self-signed certificate, wanting `KEY`; yields its
    URL and the certificate to trust."""
    folder = tmp_path_factory.mktemp("tls")
    tls = self_signed_certificate(folder)
    args = ("--n_ctx", "512", "--api_key", KEY)
    with llama_cpp_server(chat_gguf, folder / "server.log", *args, tls=tls) as url:
        yield url + "/v1", tls[0]


def test_https_with_a_key(secured_url: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The key goes as `Authorization: Bearer` (the server refuses a request without it or
    with another), and a certificate is trusted only when SSL_CERT_FILE names it."""
    url, cert = secured_url
    assert url.startswith("https://")
    keyed = ModelSettings(temperature=0.0, max_tokens=4, api_key=KEY)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with pytest.raises(AssistError, match="certificate is not trusted") as untrusted:
        list(RemoteModel(url, keyed).chat([Message("user", "hi")]))
    assert "SSL_CERT_FILE" in untrusted.value.hint
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    for key in (None, "sk-wrong"):
        settings = ModelSettings(temperature=0.0, max_tokens=4, api_key=key)
        with pytest.raises(AssistError, match="HTTP 401"):
            list(RemoteModel(url, settings).chat([Message("user", "hi")]))
    assert "".join(RemoteModel(url, keyed).chat([Message("user", "hi")])) == "aaaa"
    assert "".join(RemoteModel(url, keyed).complete("hi")) == "aaaa"


def test_grammar_constrains_the_output(model: Model) -> None:
    """The agent's tool calls rely on this: under a GBNF grammar the tiny model (which would
    otherwise repeat its favourite letter) can only write what the grammar allows."""
    grammar = 'root ::= "{\\"tool\\": \\"" ("read" | "grep") "\\"}"'
    request = Request(max_tokens=16, grammar=grammar)
    text = "".join(model.chat([Message("user", "call a tool")], request))
    assert text in ('{"tool": "read"}', '{"tool": "grep"}'), text
