"""Events: CloudEvents envelope, contracts, the outbox, the relay and the consumer runner."""
