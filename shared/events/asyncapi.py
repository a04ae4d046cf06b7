"""The published event contract: an AsyncAPI 3.0.0 document built from `contracts.ALL_EVENTS`.

Channels are NATS subjects, one per (event type, audience); Knowflow `send`s on each.
A message is the CloudEvents 1.0 structured envelope (`envelope.CloudEvent`) whose `data`
is the event's pydantic model. Pydantic writes JSON Schema Draft 2020-12 with `$defs`;
the default AsyncAPI schema format is a superset of Draft 07, so every model and nested
model becomes one entry of `components/schemas` and refs point there (no `$defs` left).
The models used here need nothing beyond Draft 07 (no `prefixItems`, no `$dynamicRef`).
"""

import html
import inspect
from datetime import UTC, datetime
from functools import cache
from importlib import metadata
from typing import Any, get_args
from urllib.parse import urlsplit
from uuid import UUID

from pydantic.json_schema import models_json_schema

from shared.events.contracts import ALL_EVENTS
from shared.events.envelope import Audience, CloudEvent, EventData, subject_for

ASYNCAPI_VERSION = "3.0.0"
CONTENT_TYPE = "application/cloudevents+json"
REF_PREFIX = "#/components/schemas/"
AUDIENCES: tuple[Audience, ...] = get_args(Audience)

AUDIENCE_TEXT: dict[Audience, str] = {
    "public": "Public: any system granted `events.public.>` may read it.",
    "restricted": (
        "Restricted: private-group content or personal data, only for Knowflow's own "
        "services and webhook endpoints explicitly granted this subject."
    ),
}

WEBHOOK_TEXT = (
    "Webhook endpoints registered by an admin receive the same CloudEvent as the HTTP "
    "request body (`Content-Type: application/cloudevents+json`), signed per the Standard "
    "Webhooks specification: `webhook-id` (the CloudEvent id, stable across retries), "
    "`webhook-timestamp` (Unix seconds) and `webhook-signature` (`v1,<base64 HMAC-SHA256>` "
    "of `id.timestamp.body`). An endpoint only receives the public subjects unless a "
    "restricted one was explicitly granted to it."
)


def audiences_of(model: type[EventData]) -> tuple[Audience, ...]:
    """Every audience an event type can be published for.

    `audience()` depends only on the event's `visibility` (if it has one), so it is
    evaluated on a bare instance for each visibility the model allows.
    """
    field = model.model_fields.get("visibility")
    values = get_args(field.annotation) if field is not None else ()
    samples = [model.model_construct(visibility=value) for value in values] or [
        model.model_construct()
    ]
    found = {sample.audience() for sample in samples}
    return tuple(audience for audience in AUDIENCES if audience in found)


def _docstring(model: type) -> tuple[str, str]:
    """The first line (summary) and the whole text (description) of a model's docstring."""
    own = model.__dict__.get("__doc__")
    text = inspect.cleandoc(own) if own else ""
    return (text.splitlines()[0] if text else ""), text


def _channel_id(event_type: str, audience: Audience) -> str:
    return subject_for(event_type, audience).removeprefix("events.")


def _operation_id(name: str, audience: Audience) -> str:
    return f"send{name}{audience.capitalize()}"


def _data_schemas() -> dict[str, Any]:
    """Every event model's JSON schema and its nested models', keyed by model name."""
    _, top = models_json_schema(
        [(model, "serialization") for model in ALL_EVENTS], ref_template=REF_PREFIX + "{model}"
    )
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    for model in ALL_EVENTS:
        _, description = _docstring(model)
        schema = schemas[model.__name__]
        schema["title"] = model.__name__
        if description:
            schema["description"] = description
        elif "description" in schema:
            del schema["description"]
    return schemas


def _envelope_schema(model: type[EventData], audiences: tuple[Audience, ...]) -> dict[str, Any]:
    """The CloudEvent envelope with `type`, `audience` and `data` narrowed to this event."""
    base = CloudEvent.model_json_schema(mode="serialization")
    properties: dict[str, Any] = dict(base["properties"])
    properties["type"] = {"type": "string", "const": model.event_type, "title": "Type"}
    properties["audience"] = {"type": "string", "enum": list(audiences), "title": "Audience"}
    properties["data"] = {"$ref": REF_PREFIX + model.__name__}
    properties["specversion"] = {"type": "string", "const": "1.0", "title": "Specversion"}
    properties["datacontenttype"] = {
        "type": "string",
        "const": "application/json",
        "title": "Datacontenttype",
    }
    return {
        "type": "object",
        "title": f"{model.__name__} CloudEvent",
        "description": (
            "CloudEvents 1.0, structured JSON mode. `subject` is the id of the entity the "
            "event is about; `traceparent` is the W3C distributed-tracing extension."
        ),
        "required": ["specversion", "id", "source", "type", "data"],
        "properties": properties,
    }


def _example_value(schema: dict[str, Any], schemas: dict[str, Any], name: str) -> Any:
    """A plausible value for a schema (enough for a reader; not a test fixture)."""
    if "$ref" in schema:
        return _example_value(schemas[schema["$ref"].removeprefix(REF_PREFIX)], schemas, name)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        options = [option for option in schema["anyOf"] if option.get("type") != "null"]
        return _example_value(options[0], schemas, name) if options else None
    kind = schema.get("type")
    if kind == "object":
        return {
            key: _example_value(value, schemas, key)
            for key, value in schema.get("properties", {}).items()
        }
    if kind == "array":
        return [_example_value(schema.get("items", {}), schemas, name)]
    if kind == "integer":
        return max(int(schema.get("minimum", 1)), 1) if "maximum" not in schema else 9
    if kind == "boolean":
        return True
    if kind == "string":
        if schema.get("format") == "uuid":
            return str(UUID(int=0x0190_0000_0000_7000_8000_0000_0000_0001))
        if schema.get("format") == "date-time":
            return datetime(2026, 1, 5, 9, 0, tzinfo=UTC).isoformat()
        return {"timezone": "Europe/Berlin", "url": "/api/v1/posts/…"}.get(name, name)
    return None


def _example(model: type[EventData], audience: Audience, schemas: dict[str, Any]) -> Any:
    data = _example_value({"$ref": REF_PREFIX + model.__name__}, schemas, model.__name__)
    return {
        "specversion": "1.0",
        "id": "0190a5c3-0000-7000-8000-00000000000a",
        "source": "/knowflow/<service>",
        "type": model.event_type,
        "time": datetime(2026, 1, 5, 9, 0, tzinfo=UTC).isoformat(),
        "subject": None,
        "datacontenttype": "application/json",
        "audience": audience,
        "data": data,
    }


def _version() -> str:
    try:
        return metadata.version("knowflow")
    except metadata.PackageNotFoundError:  # running from a tree that is not installed
        return "0.0.0"


def build_document(*, nats_url: str = "nats://127.0.0.1:4222") -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of every Knowflow event, as a JSON-ready dict."""
    schemas = _data_schemas()
    nats = urlsplit(nats_url)
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for model in ALL_EVENTS:
        name = model.__name__
        audiences = audiences_of(model)
        summary, description = _docstring(model)
        envelope = f"{name}Envelope"
        schemas[envelope] = _envelope_schema(model, audiences)
        messages[name] = {
            "name": name,
            "title": model.event_type,
            "summary": summary or f"`{model.event_type}`",
            "description": description or f"The `{model.event_type}` event.",
            "contentType": CONTENT_TYPE,
            "headers": {
                "type": "object",
                "properties": {
                    "Nats-Msg-Id": {
                        "type": "string",
                        "description": "The CloudEvent id: JetStream drops a re-publication.",
                    }
                },
            },
            "payload": {"$ref": REF_PREFIX + envelope},
            "examples": [
                {"name": audience, "payload": _example(model, audience, schemas)}
                for audience in audiences[:1]
            ],
        }
        for audience in audiences:
            channel_id = _channel_id(model.event_type, audience)
            text = AUDIENCE_TEXT[audience]
            if len(audiences) > 1:
                others = ", ".join(
                    f"`{subject_for(model.event_type, a)}`" for a in audiences if a != audience
                )
                text += (
                    " This event type's audience depends on its content (an item of a "
                    "private group is restricted), so it appears on both audiences' "
                    f"channels; see also {others}."
                )
            channels[channel_id] = {
                "address": subject_for(model.event_type, audience),
                "title": f"{model.event_type} ({audience})",
                "description": text,
                "servers": [{"$ref": "#/servers/nats"}, {"$ref": "#/servers/webhooks"}],
                "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            }
            operations[_operation_id(name, audience)] = {
                "action": "send",
                "title": f"Knowflow sends {model.event_type} ({audience})",
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "messages": [{"$ref": f"#/channels/{channel_id}/messages/{name}"}],
            }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Knowflow events",
            "version": _version(),
            "description": (
                "Every event Knowflow publishes, as CloudEvents 1.0 on NATS JetStream "
                "(stream subjects `events.<audience>.<entity>.<verb>.<version>`). "
                "Content events carry the item's whole current state with a growing "
                "`version`: keep the highest. " + WEBHOOK_TEXT
            ),
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "nats": {
                "host": nats.netloc or "127.0.0.1:4222",
                "protocol": "nats",
                "description": (
                    "NATS JetStream; each message's `Nats-Msg-Id` header is the event id. "
                    "Systems outside Knowflow are granted `events.public.>` only."
                ),
            },
            "webhooks": {
                "host": "{receiver}",
                "protocol": "https",
                "description": WEBHOOK_TEXT,
                "variables": {"receiver": {"description": "The host of a registered endpoint."}},
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


@cache
def cached_document(nats_url: str) -> dict[str, Any]:
    """The document is a function of the code and one setting: build it once per process."""
    return build_document(nats_url=nats_url)


# --- the readable page -----------------------------------------------------------------

# The page has no script, style or image of its own: nothing may load, nobody may frame it.
PAGE_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def _type_text(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].removeprefix(REF_PREFIX)
    if "const" in schema:
        return repr(schema["const"])
    if "enum" in schema:
        return " | ".join(repr(value) for value in schema["enum"])
    if "anyOf" in schema:
        return " | ".join(_type_text(option) for option in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list[{_type_text(schema.get('items', {}))}]"
    kind = str(schema.get("type", "any"))
    return f"{kind} ({schema['format']})" if "format" in schema else kind


def _fields_table(schema: dict[str, Any]) -> str:
    required = set(schema.get("required", []))
    rows = "".join(
        "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
            html.escape(field),
            html.escape(_type_text(spec)),
            "yes" if field in required else "no",
            html.escape(str(spec.get("description", ""))),
        )
        for field, spec in schema.get("properties", {}).items()
    )
    return (
        "<table><thead><tr><th>Field</th><th>Type</th><th>Required</th><th>Description</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>"
    )


def render_page(document: dict[str, Any]) -> str:
    """A server-rendered HTML page of the document: no script, no CDN, everything escaped."""
    esc = html.escape
    schemas = document["components"]["schemas"]
    messages = document["components"]["messages"]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{esc(document['info']['title'])} — AsyncAPI</title></head><body>",
        f"<h1>{esc(document['info']['title'])} {esc(document['info']['version'])}</h1>",
        f"<p>{esc(document['info']['description'])}</p>",
        "<p>Machine-readable: <a href='/asyncapi.json'>/asyncapi.json</a> "
        f"(AsyncAPI {esc(document['asyncapi'])}).</p>",
        "<h2>Servers</h2><ul>",
    ]
    for name, server in document["servers"].items():
        parts.append(
            f"<li><strong>{esc(name)}</strong> ({esc(server['protocol'])}, "
            f"<code>{esc(server['host'])}</code>): {esc(server['description'])}</li>"
        )
    parts.append("</ul><h2>Channels</h2><ul>")
    for channel_id, channel in document["channels"].items():
        parts.append(
            f"<li><a href='#{esc(channel_id)}'><code>{esc(channel['address'])}</code></a></li>"
        )
    parts.append("</ul>")
    for channel_id, channel in document["channels"].items():
        parts.append(
            f"<section id='{esc(channel_id)}'><h3><code>{esc(channel['address'])}</code></h3>"
            f"<p>{esc(channel['description'])}</p>"
        )
        for ref in channel["messages"].values():
            message = messages[ref["$ref"].rsplit("/", 1)[1]]
            data_name = message["payload"]["$ref"].removeprefix(REF_PREFIX).removesuffix("Envelope")
            parts.append(
                f"<h4>{esc(message['name'])} — <code>{esc(message['title'])}</code></h4>"
                f"<pre>{esc(message['description'])}</pre>"
                f"<p>CloudEvent envelope (<code>{esc(message['contentType'])}</code>):</p>"
                + _fields_table(schemas[message["payload"]["$ref"].removeprefix(REF_PREFIX)])
                + f"<p><code>data</code> ({esc(data_name)}):</p>"
                + _fields_table(schemas[data_name])
            )
        parts.append("</section>")
    nested = [
        name
        for name in schemas
        if not name.endswith("Envelope") and name not in messages and "properties" in schemas[name]
    ]
    if nested:
        parts.append("<h2>Nested types</h2>")
        for name in nested:
            parts.append(f"<h3 id='schema-{esc(name)}'>{esc(name)}</h3>")
            if schemas[name].get("description"):
                parts.append(f"<pre>{esc(schemas[name]['description'])}</pre>")
            parts.append(_fields_table(schemas[name]))
    parts.append("</body></html>")
    return "".join(parts)
