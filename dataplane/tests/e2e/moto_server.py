"""Runs `moto_server` (same arguments) with one correction to its SigV4
check: for form-encoded requests (the SNS query protocol) moto re-encodes
the parsed form to recompute the signature, and its encoding of a space
('+') differs from the AWS SDK for Rust's ('%20'), so any message with a
space fails with SignatureDoesNotMatch although AWS accepts it. Reading the
raw body before Flask parses the form makes moto check the signature over
the bytes actually sent, as AWS does. Everything else is moto as shipped."""

import sys

import flask
import moto.server
from moto.moto_server import werkzeug_app

_create = werkzeug_app.create_backend_app


def _create_keeping_raw_body(service):
    app = _create(service)

    @app.before_request
    def keep_raw_body():
        flask.request.get_data(cache=True, parse_form_data=False)

    return app


moto.server.create_backend_app = _create_keeping_raw_body
werkzeug_app.create_backend_app = _create_keeping_raw_body

if __name__ == "__main__":
    moto.server.main(sys.argv[1:])
