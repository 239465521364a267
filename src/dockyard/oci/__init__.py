"""Pure knowledge of the OCI specifications: grammar, digests, media types, manifests, ranges."""
