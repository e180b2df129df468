//! The tower layer around the gRPC server that counts and times every call
//! by service, method and gRPC status code.
//!
//! The service label is the fully qualified service name
//! (`ccag.admin.v1.KeyService`), the method label the method's name
//! (`CreateKey`): only for methods this server has (from the descriptor
//! sets it serves); any other path counts as `unknown`/`unknown`, so a
//! client cannot mint label values. The code comes from the response's
//! headers (a trailers-only answer, such as an error before any message) or
//! else from its trailers; a body that ends without a status counts as
//! `Unknown`, one dropped before its end (the client went away) as
//! `Cancelled`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tonic::codegen::Service;

use super::Metrics;

/// The canonical name of gRPC status `code` (`grpc-status`), as in
/// `google.rpc.Code`; anything else is `Unknown`.
pub fn code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "Cancelled",
        2 => "Unknown",
        3 => "InvalidArgument",
        4 => "DeadlineExceeded",
        5 => "NotFound",
        6 => "AlreadyExists",
        7 => "PermissionDenied",
        8 => "ResourceExhausted",
        9 => "FailedPrecondition",
        10 => "Aborted",
        11 => "OutOfRange",
        12 => "Unimplemented",
        13 => "Internal",
        14 => "Unavailable",
        15 => "DataLoss",
        16 => "Unauthenticated",
        _ => "Unknown",
    }
}

/// The code named by a header map's `grpc-status`, if it has one.
pub fn code_in(headers: &http::HeaderMap) -> Option<&'static str> {
    let v = headers.get("grpc-status")?;
    Some(v.to_str().ok().and_then(|s| s.trim().parse::<i32>().ok()).map_or("Unknown", code_name))
}

/// `/pkg.Service/Method` split into (`pkg.Service`, `Method`): a package
/// and service of `[A-Za-z0-9_.]` with at least one dot, a method of
/// `[A-Za-z0-9_]`; `None` for anything else.
pub fn split_path(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    let word = |s: &str, dots: bool| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || (dots && b == b'.'))
    };
    let qualified = service.contains('.') && !service.starts_with('.') && !service.ends_with('.');
    (qualified && word(service, true) && word(method, false)).then_some((service, method))
}

/// The (service, method) label values of one method.
pub type Labels = (Arc<str>, Arc<str>);

/// The methods this server has, as label values.
pub struct Known {
    /// service → method → labels.
    methods: HashMap<String, HashMap<String, Labels>>,
    unknown: Labels,
}

impl Known {
    /// Every method of the services in these encoded `FileDescriptorSet`s.
    pub fn from_descriptor_sets(sets: &[&[u8]]) -> Known {
        let mut methods: HashMap<String, HashMap<String, Labels>> = HashMap::new();
        for set in sets {
            let set = match <descriptor::FileDescriptorSet as prost::Message>::decode(*set) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "a descriptor set does not decode; its calls count as unknown");
                    continue;
                }
            };
            for file in set.file {
                for service in file.service {
                    let name = if file.package.is_empty() {
                        service.name.clone()
                    } else {
                        format!("{}.{}", file.package, service.name)
                    };
                    let label: Arc<str> = Arc::from(name.as_str());
                    let of_service = methods.entry(name).or_default();
                    for m in service.method {
                        let value = (label.clone(), Arc::from(m.name.as_str()));
                        of_service.insert(m.name, value);
                    }
                }
            }
        }
        Known { methods, unknown: (Arc::from("unknown"), Arc::from("unknown")) }
    }

    /// This server's: the admin API, the data-plane service, health and
    /// reflection.
    pub fn served() -> Known {
        Known::from_descriptor_sets(&[
            ccag_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ])
    }

    fn find(&self, service: &str, method: &str) -> Option<&Labels> {
        self.methods.get(service)?.get(method)
    }

    pub fn has(&self, service: &str, method: &str) -> bool {
        self.find(service, method).is_some()
    }

    /// The (service, method) labels of a request path.
    pub fn labels(&self, path: &str) -> Labels {
        split_path(path).and_then(|(s, m)| self.find(s, m)).unwrap_or(&self.unknown).clone()
    }
}

/// The few fields of `google.protobuf.FileDescriptorSet` needed here (prost
/// skips the others).
mod descriptor {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FileDescriptorSet {
        #[prost(message, repeated, tag = "1")]
        pub file: Vec<FileDescriptorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FileDescriptorProto {
        #[prost(string, tag = "2")]
        pub package: String,
        #[prost(message, repeated, tag = "6")]
        pub service: Vec<ServiceDescriptorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ServiceDescriptorProto {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, repeated, tag = "2")]
        pub method: Vec<MethodDescriptorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MethodDescriptorProto {
        #[prost(string, tag = "1")]
        pub name: String,
    }
}

/// Wraps the gRPC server: `Server::builder().layer(MetricsLayer::new(..))`.
#[derive(Clone)]
pub struct MetricsLayer {
    metrics: Arc<Metrics>,
    known: Arc<Known>,
}

impl MetricsLayer {
    pub fn new(metrics: Arc<Metrics>, known: Known) -> MetricsLayer {
        MetricsLayer { metrics, known: Arc::new(known) }
    }
}

impl<S> tower_layer::Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> MetricsService<S> {
        MetricsService { inner, metrics: self.metrics.clone(), known: self.known.clone() }
    }
}

#[derive(Clone)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Arc<Metrics>,
    known: Arc<Known>,
}

/// One call whose status is not known yet; recorded once, when it is.
pub struct Call {
    metrics: Arc<Metrics>,
    service: Arc<str>,
    method: Arc<str>,
    started: Instant,
}

impl Call {
    pub fn new(metrics: Arc<Metrics>, (service, method): Labels) -> Call {
        Call { metrics, service, method, started: Instant::now() }
    }

    fn finish(self, code: &'static str) {
        let (s, m) = (&*self.service, &*self.method);
        self.metrics.admin_requests.with_label_values(&[s, m, code]).inc();
        self.metrics.admin_duration.with_label_values(&[s, m]).observe(self.started.elapsed().as_secs_f64());
    }
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for MetricsService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Body<Data = Bytes> + Unpin,
{
    type Response = http::Response<Recorded<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let call = Call::new(self.metrics.clone(), self.known.labels(req.uri().path()));
        let answer = self.inner.call(req);
        Box::pin(async move {
            match answer.await {
                Ok(res) => Ok(Recorded::response(res, call)),
                Err(e) => {
                    call.finish("Unknown");
                    Err(e)
                }
            }
        })
    }
}

/// A response body that records its call when the status is known.
pub struct Recorded<B> {
    inner: B,
    call: Option<Call>,
}

impl<B: Body> Recorded<B> {
    /// Records `call` at once for a trailers-only response, else when the
    /// body's trailers (or its end) come.
    pub fn response(res: http::Response<B>, call: Call) -> http::Response<Recorded<B>> {
        let (parts, inner) = res.into_parts();
        let call = match code_in(&parts.headers) {
            Some(code) => {
                call.finish(code);
                None
            }
            None => Some(call),
        };
        http::Response::from_parts(parts, Recorded { inner, call })
    }

    fn settle(&mut self, code: &'static str) {
        if let Some(call) = self.call.take() {
            call.finish(code);
        }
    }
}

impl<B: Body + Unpin> Body for Recorded<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    this.settle(code_in(trailers).unwrap_or("Unknown"));
                }
            }
            Poll::Ready(Some(Err(_))) | Poll::Ready(None) => this.settle("Unknown"),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Recorded<B> {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            call.finish("Cancelled");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn a_qualified_path_splits_into_service_and_method() {
        assert_eq!(split_path("/ccag.admin.v1.KeyService/CreateKey"), Some(("ccag.admin.v1.KeyService", "CreateKey")));
    }

    #[test]
    fn a_path_without_a_package_is_not_a_method() {
        assert_eq!(split_path("/KeyService/CreateKey"), None);
    }

    #[test]
    fn malformed_paths_are_not_methods() {
        for p in [
            "",
            "/",
            "/health",
            "/a.B/",
            "/a.B/C/D",
            "/.B/C",
            "/a./C",
            "a.B/C",
            "/a.B/C?x=1",
            "/a-b.C/D",
            "/a.B/C.D",
            "/a.B/%41",
            "/a.b.Ünï/C",
        ] {
            assert_eq!(split_path(p), None, "{p:?}");
        }
    }

    #[test]
    fn the_served_methods_include_the_admin_api_the_data_planes_health_and_reflection() {
        let k = Known::served();
        assert!(k.has("ccag.admin.v1.KeyService", "CreateKey"));
        assert!(k.has("ccag.admin.v1.AuthService", "Login"));
        assert!(k.has("ccag.config.v1.DataPlaneService", "Watch"));
        assert!(k.has("ccag.config.v1.DataPlaneService", "ReportUsage"));
        assert!(k.has("grpc.health.v1.Health", "Check"));
        assert!(k.has("grpc.reflection.v1.ServerReflection", "ServerReflectionInfo"));
        assert!(k.has("grpc.reflection.v1alpha.ServerReflection", "ServerReflectionInfo"));
    }

    #[test]
    fn a_served_method_is_labelled_by_its_service_and_name() {
        let (s, m) = Known::served().labels("/ccag.admin.v1.KeyService/CreateKey");
        assert_eq!((&*s, &*m), ("ccag.admin.v1.KeyService", "CreateKey"));
    }

    #[test]
    fn a_well_formed_path_this_server_lacks_is_unknown() {
        let k = Known::served();
        for p in ["/ccag.admin.v1.KeyService/NoSuchMethod", "/ccag.admin.v1.NoSuchService/CreateKey", "/a.b.C/D"] {
            let (s, m) = k.labels(p);
            assert_eq!((&*s, &*m), ("unknown", "unknown"), "{p}");
        }
    }

    #[test]
    fn a_malformed_path_is_unknown() {
        let (s, m) = Known::served().labels("/not grpc at all");
        assert_eq!((&*s, &*m), ("unknown", "unknown"));
    }

    #[test]
    fn codes_have_their_canonical_names() {
        let names: Vec<&str> = (0..=16).map(code_name).collect();
        assert_eq!(
            names,
            [
                "OK",
                "Cancelled",
                "Unknown",
                "InvalidArgument",
                "DeadlineExceeded",
                "NotFound",
                "AlreadyExists",
                "PermissionDenied",
                "ResourceExhausted",
                "FailedPrecondition",
                "Aborted",
                "OutOfRange",
                "Unimplemented",
                "Internal",
                "Unavailable",
                "DataLoss",
                "Unauthenticated",
            ]
        );
    }

    #[test]
    fn codes_match_tonics() {
        for n in 0..=16 {
            let tonic = format!("{:?}", tonic::Code::from_i32(n));
            let ours = code_name(n);
            assert!(tonic.eq_ignore_ascii_case(ours), "{n}: tonic {tonic}, ours {ours}");
        }
    }

    #[test]
    fn an_out_of_range_or_garbled_status_is_unknown() {
        assert_eq!(code_name(17), "Unknown");
        assert_eq!(code_name(-1), "Unknown");
        let mut h = http::HeaderMap::new();
        h.insert("grpc-status", http::HeaderValue::from_static("seven"));
        assert_eq!(code_in(&h), Some("Unknown"));
    }

    #[test]
    fn headers_without_a_status_name_no_code() {
        assert_eq!(code_in(&http::HeaderMap::new()), None);
    }

    fn counted(m: &Metrics, code: &str) -> u64 {
        m.admin_requests.with_label_values(&["ccag.admin.v1.KeyService", "CreateKey", code]).get()
    }

    fn call(m: &Arc<Metrics>) -> Call {
        Call::new(m.clone(), Known::served().labels("/ccag.admin.v1.KeyService/CreateKey"))
    }

    fn trailers(code: &'static str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert("grpc-status", http::HeaderValue::from_static(code));
        h
    }

    type Frames = http_body_util::StreamBody<
        futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, std::convert::Infallible>>>,
    >;

    fn body(frames: Vec<Frame<Bytes>>) -> Frames {
        let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = frames.into_iter().map(Ok).collect();
        http_body_util::StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn the_code_of_a_trailers_only_response_comes_from_its_headers() {
        let m = Arc::new(Metrics::new());
        let mut res = http::Response::new(body(vec![]));
        *res.headers_mut() = trailers("7");
        let res = Recorded::response(res, call(&m));
        assert_eq!(counted(&m, "PermissionDenied"), 1, "recorded before the body is read");
        let _ = res.into_body().collect().await;
        assert_eq!(counted(&m, "PermissionDenied"), 1, "and only once");
    }

    #[tokio::test]
    async fn the_code_of_a_response_with_messages_comes_from_its_trailers() {
        let m = Arc::new(Metrics::new());
        let res =
            http::Response::new(body(vec![Frame::data(Bytes::from_static(b"msg")), Frame::trailers(trailers("0"))]));
        let res = Recorded::response(res, call(&m));
        assert_eq!(counted(&m, "OK"), 0, "not known before the trailers");
        let _ = res.into_body().collect().await;
        assert_eq!(counted(&m, "OK"), 1);
        let duration = m.admin_duration.with_label_values(&["ccag.admin.v1.KeyService", "CreateKey"]);
        assert_eq!(duration.get_sample_count(), 1);
    }

    #[tokio::test]
    async fn a_body_that_ends_without_a_status_is_unknown() {
        let m = Arc::new(Metrics::new());
        let res = Recorded::response(http::Response::new(body(vec![Frame::data(Bytes::from_static(b"x"))])), call(&m));
        let _ = res.into_body().collect().await;
        assert_eq!(counted(&m, "Unknown"), 1);
    }

    #[test]
    fn a_body_dropped_before_its_status_is_cancelled() {
        let m = Arc::new(Metrics::new());
        let res = Recorded::response(http::Response::new(body(vec![Frame::trailers(trailers("0"))])), call(&m));
        drop(res);
        assert_eq!((counted(&m, "Cancelled"), counted(&m, "OK")), (1, 0));
    }
}
