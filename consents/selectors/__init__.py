"""Non-trivial reads of the consent domain, one module per area; import from the module itself."""
