"""Every write in the consent domain, one module per area; import from the module itself."""
