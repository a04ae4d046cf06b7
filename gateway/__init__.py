"""The gateway: the single public origin in front of the Knowflow services."""
