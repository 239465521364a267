"""Blob storage: a small driver interface, its drivers, and the blobstore that owns the layout."""
