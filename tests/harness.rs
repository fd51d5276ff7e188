//! harness self-tests (placeholder)
