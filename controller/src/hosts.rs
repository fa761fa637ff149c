//! Build hosts: the worker protocol client, one link per host (local child process or SSH), and the
//! pool's placement strategies.

pub mod link;
pub mod local;
pub mod pool;
pub mod worker_client;
