//! libFuzzer entry of the `bookie_wire` target: see `distlog_fuzz::bookie_wire` for the input format and
//! the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| distlog_fuzz::bookie_wire::run(data));
