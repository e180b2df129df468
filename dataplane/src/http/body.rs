//! The response body type shared by every handler: either a complete buffer
//! or a stream of frames written as they are produced.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};

pub type ResBody = BoxBody<Bytes, Infallible>;

pub fn full(b: impl Into<Bytes>) -> ResBody {
    Full::new(b.into()).boxed()
}
