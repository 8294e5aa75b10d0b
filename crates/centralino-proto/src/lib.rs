//! Protobuf and gRPC code generated from `proto/centralino/v1`, plus conversions
//! between wire types and [`centralino_domain`] types.
//!
//! The generated files under `src/gen/` are checked in; the `codegen` test
//! regenerates them with `protox` (no system `protoc`) and fails on drift.
//! Wire types and domain types stay apart: `From<domain>` for the wire side,
//! `TryFrom<wire>` returning a field-naming [`centralino_domain::DomainError`].

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    include!("gen/centralino.v1.rs");
}

mod convert;

/// Encoded `FileDescriptorSet` of every Centralino proto, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("gen/descriptor.bin");

pub use convert::{
    channel_from_i32, identifier_kind_from_i32, interaction_from_proto, timestamp_from_chrono,
    timestamp_to_chrono,
};
