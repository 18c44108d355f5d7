"""Privacy requests: the consumer's copy of their data (export) and the deletion of their account."""
