"""Prometheus metrics every service exposes at /metrics."""

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "knowflow_http_requests_total",
    "HTTP requests handled",
    ["service", "method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "knowflow_http_request_duration_seconds",
    "HTTP request latency",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
EVENTS_PUBLISHED = Counter(
    "knowflow_events_published_total", "Outbox events published to JetStream", ["service"]
)
EVENTS_CONSUMED = Counter(
    "knowflow_events_consumed_total",
    "Events settled by a consumer, by outcome",
    ["service", "consumer", "outcome"],
)
OUTBOX_BACKLOG = Gauge("knowflow_outbox_backlog", "Outbox rows not yet published", ["service"])
CONSUMER_LAG = Gauge(
    "knowflow_consumer_lag", "Messages the durable consumer has not yet received", ["consumer"]
)
EVENTS_PARKED = Counter(
    "knowflow_events_parked_total",
    "Messages a consumer parked on its dead-letter subject (poison, not outages)",
    ["consumer"],
)
CONSUMER_PAUSED = Gauge(
    "knowflow_consumer_paused",
    "1 while a consumer waits for an unavailable dependency (database, OpenSearch), else 0",
    ["consumer"],
)
