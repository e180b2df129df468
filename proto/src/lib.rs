//! Protobuf contracts shared by the CCAG control plane and data planes.
//! Every message also (de)serialises as proto3 JSON through pbjson.

pub mod config {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/ccag.config.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/ccag.config.v1.serde.rs"));
    }
}
