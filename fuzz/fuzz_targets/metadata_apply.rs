//! libFuzzer entry of the `metadata_apply` target: see `distlog_fuzz::metadata_apply` for the input format and
//! the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| distlog_fuzz::metadata_apply::run(data));
