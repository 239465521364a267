"""The metadata database: schema, migrations and typed query functions taking a connection."""
