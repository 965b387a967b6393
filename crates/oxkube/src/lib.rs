//! Library parts of the oxkube binary that tests and the subcommands share: joining a
//! cluster as a node (`join`).

pub mod join;
