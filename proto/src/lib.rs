//! Protobuf contracts shared by the CCAG control plane, data planes and CLI.
//! Every message also (de)serialises as proto3 JSON through pbjson.

pub mod config {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/ccag.config.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/ccag.config.v1.serde.rs"));
    }
}

pub mod admin {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/ccag.admin.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/ccag.admin.v1.serde.rs"));
    }
}

pub mod budget;
pub mod export;
pub mod models;
pub mod pricing;
pub mod routing;
pub mod signin;

/// Every service's descriptors, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));
