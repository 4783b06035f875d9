//! Anthropic Messages API provider (being written).
