"""Supply-chain scanning: pure readers of image layers, package databases, advisories and signatures."""
