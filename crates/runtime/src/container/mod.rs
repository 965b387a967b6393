//! Containers: OCI spec building, the per-container shim and the container manager.
pub mod devices;
pub mod execproc;
pub mod manager;
pub mod podinit;
pub mod seccomp;
pub mod shim;
pub mod spec;
pub mod stats;
pub mod streaming;
