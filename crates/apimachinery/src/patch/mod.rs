//! Patch engines (placeholder during development).
