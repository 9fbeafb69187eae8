//! libFuzzer entry of the `raft_frame` target: see `distlog_fuzz::raft_frame` for the input format and
//! the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| distlog_fuzz::raft_frame::run(data));
