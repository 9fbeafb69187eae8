//! Tests of the bookie.
