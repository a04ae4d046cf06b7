"""What the SCIM endpoint declares: its configuration, resource types and the attributes it keeps.

The schemas are scim2-models' User and Group schemas cut down to the attributes identity
stores, so a client (and the compliance checker) knows exactly what round-trips.
"""

from typing import Any

from scim2_models import (
    URI,
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    Context,
    ETag,
    Filter,
    Patch,
    Reference,
    ResourceType,
    ServiceProviderConfig,
    Sort,
)
from scim2_models import Group as ScimGroup
from scim2_models import User as ScimUser

MAX_RESULTS = 200

# Attribute (and sub-attribute) names kept per schema; everything else is not stored.
# Knowflow always has a display name and an account state: declared required (a request
# without them still works: the userName is the display name, the account is active).
REQUIRED = {"displayName", "active"}
KEPT: dict[str, dict[str, set[str] | None]] = {
    "User": {
        "userName": None,
        "displayName": None,
        "active": None,
        "emails": {"value"},
        "groups": {"value", "$ref", "display"},
    },
    "Group": {"displayName": None, "members": {"value", "$ref", "type"}},
}


def _cut(schema: dict[str, Any], kept: dict[str, set[str] | None]) -> dict[str, Any]:
    attributes = []
    for attribute in schema["attributes"]:
        if attribute["name"] not in kept:
            continue
        sub_kept = kept[attribute["name"]]
        if sub_kept is not None and "subAttributes" in attribute:
            attribute = {
                **attribute,
                "subAttributes": [
                    sub for sub in attribute["subAttributes"] if sub["name"] in sub_kept
                ],
            }
        if attribute["name"] in REQUIRED:
            attribute = {**attribute, "required": True}
        attributes.append(attribute)
    return {**schema, "attributes": attributes}


def _schema(model: type[ScimUser] | type[ScimGroup], name: str) -> dict[str, Any]:
    full = model.to_schema().model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    cut = _cut(full, KEPT[name])
    cut["meta"] = {"resourceType": "Schema", "location": f"/Schemas/{cut['id']}"}
    return cut


SCHEMAS: dict[str, dict[str, Any]] = {
    schema["id"]: schema for schema in (_schema(ScimUser, "User"), _schema(ScimGroup, "Group"))
}

SERVICE_PROVIDER_CONFIG: dict[str, Any] = ServiceProviderConfig(
    documentation_uri=None,
    patch=Patch(supported=True),
    bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
    filter=Filter(supported=True, max_results=MAX_RESULTS),
    change_password=ChangePassword(supported=False),
    sort=Sort(supported=False),
    etag=ETag(supported=False),
    authentication_schemes=[
        AuthenticationScheme(
            type="oauthbearertoken",
            name="Provisioning client token",
            description="A bearer token an admin creates with POST /api/v1/scim-clients",
            primary=True,
        )
    ],
).model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)


def resource_types(base: str) -> list[ResourceType]:
    """The User and Group resource types, located under `base` (…/scim/v2)."""
    types = []
    for model, name in ((ScimUser, "User"), (ScimGroup, "Group")):
        item = ResourceType.from_resource(model)
        item.endpoint = Reference[URI](f"/{name}s")
        item.meta = None
        types.append(item)
    for item in types:
        from scim2_models import Meta

        item.meta = Meta(resource_type="ResourceType", location=f"{base}/ResourceTypes/{item.id}")
    return types
