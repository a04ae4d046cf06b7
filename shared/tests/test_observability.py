"""Trace context: one request can be followed through HTTP hops, events and logs."""

import json
import logging

from shared.observability import (
    JsonFormatter,
    bind_traceparent,
    child_traceparent,
    outgoing_headers,
    request_id_var,
    trace_id_of,
    traceparent_var,
)

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_child_keeps_the_trace_id_and_makes_a_new_span() -> None:
    child = child_traceparent(PARENT)
    assert trace_id_of(child) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert child != PARENT and child.endswith("-01")


def test_a_malformed_parent_starts_a_new_trace() -> None:
    child = child_traceparent("garbage")
    assert trace_id_of(child) not in (None, "4bf92f3577b34da6a3ce929d0e0e4736")


def test_outgoing_headers_carry_request_id_and_trace() -> None:
    request_token = request_id_var.set("req-1")
    trace_token = traceparent_var.set(PARENT)
    try:
        headers = outgoing_headers()
    finally:
        request_id_var.reset(request_token)
        traceparent_var.reset(trace_token)
    assert headers["X-Request-ID"] == "req-1"
    assert trace_id_of(headers["traceparent"]) == trace_id_of(PARENT)


def test_event_handlers_log_under_the_publishers_trace() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "handled", None, None)
    with bind_traceparent(PARENT):
        line = json.loads(JsonFormatter("search").format(record))
    assert line["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert line["service"] == "search" and line["message"] == "handled"
