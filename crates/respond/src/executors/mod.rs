//! Executors built from `[respond]` config. (Being written.)
