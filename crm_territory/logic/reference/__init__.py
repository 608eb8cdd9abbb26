"""Reference data: the alias tables for regions and segments, and canonical values through them."""
