//! The generated `syncguard.v1` gRPC contract: messages, clients and servers of all five
//! services, and the descriptor set that server reflection serves.

/// Generated code of the `syncguard.v1` package.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("syncguard.v1");
}

/// Encoded `FileDescriptorSet` of the contract, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("syncguard_descriptor");

pub mod codec;
pub mod names;
