//! wf-state: the persistent, crash-exact state machine behind `wf`. The engine proposes entries;
//! this crate checks them against the pure state machine (`machine`), journals them durably
//! (`store` over `journal`, wf's own index files, and `wal`, the record log) and answers queries.
#![forbid(unsafe_code)]

pub mod checkpoints;
pub mod codec;
pub mod detail;
pub mod durable;
pub mod error;
pub mod hashing;
pub mod identity;
pub mod journal;
mod keys;
pub mod live;
pub mod lock;
pub mod machine;
pub mod objects;
pub mod process;
pub mod record;
pub mod recover;
pub mod safe;
pub mod store;
pub mod ts;
pub mod wal;
pub mod watchdog;

pub use error::StateError;
pub use machine::{RunSnapshot, RunView, TaskView};
pub use record::{
    Entry, PrunedCheckpoint, PrunedLog, Reason, Record, RunId, RunState, TaskPlan, TaskState,
};
pub use store::{Access, Store};
