//! Playbooks. (Being written.)
