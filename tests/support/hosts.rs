//! test hosts (placeholder)
