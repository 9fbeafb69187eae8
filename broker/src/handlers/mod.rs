//! One module per Kafka API.

pub mod fetch;
pub mod list_offsets;
pub mod produce;
