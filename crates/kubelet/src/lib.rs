//! The kubelet: the node agent that registers the node, runs the pods bound to it through CRI
//! (and nothing else), heals them, and serves the kubelet HTTPS API.

pub mod probe;
pub mod server;
pub mod volumes;
