//! The kubelet: the node agent that registers the node, runs the pods bound to it through CRI
//! (and nothing else), heals them, and serves the kubelet HTTPS API.

pub mod backoff;
pub mod env;
pub mod expand;
pub mod qos;
pub mod labels;
pub mod plan;
pub mod podstate;
pub mod status;
pub mod criconfig;
pub mod pullsecrets;
