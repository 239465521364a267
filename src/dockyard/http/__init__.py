"""HTTP: the route table, middleware and thin handlers."""
