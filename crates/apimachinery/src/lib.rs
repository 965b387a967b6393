//! sans-IO Kubernetes API machinery shared by the API server and the components: the resource
//! registry, object-meta rules, label and field selectors, patch engines, Status errors, Table
//! printing, defaulting and validation of built-in kinds, OpenAPI documents. No tokio, no IO.

pub mod conversion;
pub mod defaults;
pub mod meta;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod registry;
pub mod satoken;
pub mod schema;
pub mod selector;
pub mod status;
pub mod table;
pub mod validation;

pub use status::{ApiError, FieldError, Reason};
