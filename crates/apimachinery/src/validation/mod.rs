//! Validation of built-in kinds.

pub mod quantity;
