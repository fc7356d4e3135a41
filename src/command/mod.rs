//! One module per verb.

pub mod approve;
pub mod check;
pub mod exec;
pub mod export;
pub mod gate;
pub mod gc;
pub mod history;
pub mod logs;
pub mod restore;
pub mod resume;
pub mod run;
pub mod status;
