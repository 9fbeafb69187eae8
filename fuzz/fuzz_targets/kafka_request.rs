//! libFuzzer entry of the `kafka_request` target: see `distlog_fuzz::kafka_request` for the input format and
//! the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| distlog_fuzz::kafka_request::run(data));
