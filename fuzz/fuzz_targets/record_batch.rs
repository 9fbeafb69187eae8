//! libFuzzer entry of the `record_batch` target: see `distlog_fuzz::record_batch` for the input format and
//! the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| distlog_fuzz::record_batch::run(data));
