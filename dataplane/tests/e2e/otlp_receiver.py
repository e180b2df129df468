"""A minimal OTLP receiver for the end-to-end tests: the TraceService and
MetricsService over gRPC (grpcio), or POST /v1/traces and /v1/metrics over
HTTP with protobuf bodies (http.server). What arrives is flattened into plain
dicts, kept in memory for the test to poll, and appended as JSON lines to a
file when one is given (handy when a test fails).

    with OtlpReceiver("grpc", jsonl_path) as rx:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": rx.protocol}
        ...
        span = wait_until(lambda: rx.span_named("chat claude-haiku-4-5"))

Spans: {"name", "kind" (e.g. "SPAN_KIND_SERVER"), "trace_id", "span_id",
"parent_span_id" (lowercase hex, "" when none), "start_ns", "end_ns",
"attributes" {key: value}, "status" {"code", "message"}, "resource" {key: value},
"scope"}.

Metric points: {"name", "unit", "description", "type" ("histogram", "sum",
"gauge", "exponential_histogram", "summary"), "monotonic" (sums),
"temporality", "attributes" {key: value}, "count"/"sum" (histograms) or
"value" (sums, gauges), "resource" {key: value}, "scope"}.

Also runnable on its own: `python3 otlp_receiver.py grpc|http PORT OUT.jsonl`.
"""

import gzip
import http.server
import json
import sys
import threading
import zlib
from concurrent import futures

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

PROTOCOLS = ("grpc", "http/protobuf")


def any_value(v):
    """An OTLP AnyValue as a plain Python value."""
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return attributes(v.kvlist_value.values)
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind)


def attributes(kvs):
    return {kv.key: any_value(kv.value) for kv in kvs}


def flatten_spans(req):
    out = []
    for rs in req.resource_spans:
        resource = attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(
                    {
                        "name": s.name,
                        "kind": trace_pb2.Span.SpanKind.Name(s.kind),
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_span_id": s.parent_span_id.hex(),
                        "start_ns": s.start_time_unix_nano,
                        "end_ns": s.end_time_unix_nano,
                        "attributes": attributes(s.attributes),
                        "status": {"code": trace_pb2.Status.StatusCode.Name(s.status.code), "message": s.status.message},
                        "resource": resource,
                        "scope": ss.scope.name,
                    }
                )
    return out


def _number(p):
    kind = p.WhichOneof("value")
    return getattr(p, kind) if kind else None


def flatten_metrics(req):
    from opentelemetry.proto.metrics.v1 import metrics_pb2

    temporality = metrics_pb2.AggregationTemporality.Name
    out = []
    for rm in req.resource_metrics:
        resource = attributes(rm.resource.attributes)
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                base = {
                    "name": m.name,
                    "unit": m.unit,
                    "description": m.description,
                    "type": kind,
                    "resource": resource,
                    "scope": sm.scope.name,
                }
                data = getattr(m, kind) if kind else None
                if kind in ("histogram", "exponential_histogram"):
                    for p in data.data_points:
                        out.append(
                            {
                                **base,
                                "temporality": temporality(data.aggregation_temporality),
                                "attributes": attributes(p.attributes),
                                "count": p.count,
                                "sum": p.sum,
                            }
                        )
                elif kind == "sum":
                    for p in data.data_points:
                        out.append(
                            {
                                **base,
                                "monotonic": data.is_monotonic,
                                "temporality": temporality(data.aggregation_temporality),
                                "attributes": attributes(p.attributes),
                                "value": _number(p),
                            }
                        )
                elif kind == "gauge":
                    for p in data.data_points:
                        out.append({**base, "attributes": attributes(p.attributes), "value": _number(p)})
                elif kind == "summary":
                    for p in data.data_points:
                        out.append({**base, "attributes": attributes(p.attributes), "count": p.count, "sum": p.sum})
                else:
                    out.append({**base, "attributes": {}})
    return out


class OtlpReceiver:
    """An OTLP receiver on 127.0.0.1 and a free port; `protocol` is "grpc"
    or "http/protobuf" (the values of OTEL_EXPORTER_OTLP_PROTOCOL)."""

    def __init__(self, protocol, jsonl_path=None, port=0):
        if protocol == "http":
            protocol = "http/protobuf"
        assert protocol in PROTOCOLS, protocol
        self.protocol = protocol
        self.lock = threading.Lock()
        self.spans = []
        self.metrics = []
        self.exports = {"traces": 0, "metrics": 0}
        self.http_requests = []  # (path, content-type) of each HTTP POST
        self.out = open(jsonl_path, "a", buffering=1) if jsonl_path else None
        self._server = None
        self.port = port

    # -- what arrived

    def _add(self, kind, items):
        with self.lock:
            self.exports[kind] += 1
            (self.spans if kind == "traces" else self.metrics).extend(items)
            if self.out:
                for item in items:
                    self.out.write(json.dumps({"signal": kind, **item}, default=str) + "\n")

    def spans_named(self, name):
        with self.lock:
            return [s for s in self.spans if s["name"] == name]

    def span_where(self, pred):
        with self.lock:
            return next((s for s in self.spans if pred(s)), None)

    def metric_points(self, name):
        with self.lock:
            return [m for m in self.metrics if m["name"] == name]

    def metric_names(self):
        with self.lock:
            return {m["name"] for m in self.metrics}

    # -- servers

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        if self.protocol == "grpc":
            self._start_grpc()
        else:
            self._start_http()
        return self

    def _start_grpc(self):
        rx = self

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request, context):
                rx._add("traces", flatten_spans(request))
                return trace_service_pb2.ExportTraceServiceResponse()

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(self, request, context):
                rx._add("metrics", flatten_metrics(request))
                return metrics_service_pb2.ExportMetricsServiceResponse()

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
        self.port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        server.start()
        self._server = server

    def _start_http(self):
        rx = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self, status, body=b"", ctype="application/x-protobuf"):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = self._read_chunked()
                else:
                    data = self.rfile.read(length)
                enc = (self.headers.get("Content-Encoding") or "").lower()
                if enc == "gzip":
                    data = gzip.decompress(data)
                elif enc == "deflate":
                    data = zlib.decompress(data)
                ctype = self.headers.get("Content-Type", "")
                with rx.lock:
                    rx.http_requests.append((self.path, ctype))
                if not ctype.startswith("application/x-protobuf"):
                    return self._answer(415, b"only application/x-protobuf", "text/plain")
                if self.path == "/v1/traces":
                    req = trace_service_pb2.ExportTraceServiceRequest.FromString(data)
                    rx._add("traces", flatten_spans(req))
                    return self._answer(200, trace_service_pb2.ExportTraceServiceResponse().SerializeToString())
                if self.path == "/v1/metrics":
                    req = metrics_service_pb2.ExportMetricsServiceRequest.FromString(data)
                    rx._add("metrics", flatten_metrics(req))
                    return self._answer(200, metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString())
                return self._answer(404, b"not found", "text/plain")

            def _read_chunked(self):
                data = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return data
                    data += self.rfile.read(size)
                    self.rfile.readline()

        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server

    def stop(self):
        if self._server is None:
            return
        if self.protocol == "grpc":
            self._server.stop(grace=None)
        else:
            self._server.shutdown()
            self._server.server_close()
        self._server = None
        if self.out:
            self.out.close()
            self.out = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":
    proto, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rx = OtlpReceiver(proto, path, port=port).start()
    print(f"otlp receiver ({rx.protocol}) on {rx.endpoint}", flush=True)
    threading.Event().wait()
