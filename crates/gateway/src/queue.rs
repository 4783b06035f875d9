//! Priority queues (being written).
