//! Any bytes as a stored journal record, run summary or task view: decode to a value or an error,
//! never a panic; whatever decodes re-encodes to bytes that decode to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wf_state::codec;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = codec::decode_record(data) {
        assert_eq!(codec::decode_record(&codec::encode_record(&r)), Ok(r));
    }
    let _ = codec::decode_run(data);
    let _ = codec::decode_checkpoints(data);
    let _ = codec::decode_cache(data);
    let _ = codec::decode_tasks(data);
});
