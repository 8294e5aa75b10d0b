//! Engine tests: one scenario per rule (`rules`) and property tests over random
//! operation sequences (`props`).

mod harness;
mod props;
mod rules;
mod sim;
