"""Built-in protocol adapters (each one an internal plugin using the public hooks)."""
