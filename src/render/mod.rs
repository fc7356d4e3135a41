//! Everything a human or a program reads: terminal lines, record descriptions, JSON rows and the
//! HTML page. Commands gather data and call into here; nothing else formats output.

pub mod console;
pub mod entry;
pub mod fmt;
pub mod json;
pub mod page;
pub mod table;
pub mod timeline;
