//! Fake Anthropic Messages API (being written).
