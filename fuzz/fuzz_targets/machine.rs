//! Random sequences of task and run entries (legal or not) against the pure state machine: it
//! never panics, refuses without changing anything, and replaying the accepted records gives the
//! state built step by step.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    wf_state::machine::fuzz_check(data);
});
