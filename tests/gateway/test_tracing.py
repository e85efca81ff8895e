"""OpenTelemetry: a server span per request with one child span per source in the fan-out."""

from __future__ import annotations

import pytest

from gateway import tracing
from tests.gateway.inprocess import LEGEVAKT_PATIENT, LEGEVAKT_QUERY, gateway, settings_for

sdk = pytest.importorskip("opentelemetry.sdk.trace", reason="the 'otel' extra is not installed")
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)


async def test_fan_out_fetches_are_child_spans_of_the_request_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with gateway(tracer_provider=provider) as kilde:
        r = await kilde.post({"query": LEGEVAKT_QUERY, "variables": {"nin": LEGEVAKT_PATIENT}})
        assert r.status_code == 200
    spans = exporter.get_finished_spans()
    server = [s for s in spans if s.name == "POST /graphql"]
    assert len(server) == 1
    fetches = [s for s in spans if s.name.startswith("fetch ")]
    assert {s.attributes["kilde.source"] for s in fetches} >= {"municipal", "kjernejournal"}
    for span in fetches:
        assert span.parent is not None
        assert span.parent.span_id == server[0].context.span_id
        assert span.context.trace_id == server[0].context.trace_id
    assert server[0].attributes["graphql.operation.root_fields"] == "patient"
    text = repr([dict(s.attributes or {}) for s in spans]) + repr([s.name for s in spans])
    assert LEGEVAKT_PATIENT not in text


def test_tracing_is_off_without_an_endpoint_and_says_how_to_install_it() -> None:
    assert tracing.tracer_provider("") is None
    assert settings_for().otlp_endpoint == ""
    try:
        import opentelemetry.exporter.otlp.proto.http  # noqa: F401
    except ImportError:  # the test extra has the SDK only: the error names the extra
        with pytest.raises(ValueError, match="'otel' extra"):
            tracing.tracer_provider("http://127.0.0.1:4318")
        return
    provider = tracing.tracer_provider("http://127.0.0.1:4318")
    assert provider is not None
    provider.shutdown()
