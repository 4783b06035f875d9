//! OpenAI-compatible chat-completions provider (being written).
