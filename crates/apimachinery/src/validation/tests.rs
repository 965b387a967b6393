//! Table-driven validation tests.

use super::*;
