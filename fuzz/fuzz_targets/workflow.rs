//! Any bytes given as wf.toml or wf.json: parse, validate and lint without panicking or hanging.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        for json in [false, true] {
            if let Ok(wf) = wf::workflow::parse_str(text, std::path::Path::new("wf.toml"), json) {
                let _ = wf::workflow::lint(&wf);
            }
        }
    }
});
