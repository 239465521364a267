"""The registry's behaviour: each method orders its storage and database steps."""
