"""SCIM 2.0 provisioning (RFC 7643/7644): routes (protocol), store (onto identity's rows),
discovery (what the endpoint declares)."""
