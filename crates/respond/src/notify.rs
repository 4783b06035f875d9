//! Notifications. (Being written.)
