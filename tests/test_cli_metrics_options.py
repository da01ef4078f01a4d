"""`heatctl run`'s metrics TLS and basic-auth options reach the metrics server the daemon starts:
HTTPS with the certificate, 401 without the password; bad option combinations give one line."""

from __future__ import annotations

import base64
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest

from controller.cli import build_parser
from controller.cli.verbs.run import metrics_security
from controller.daemon import metrics
from controller.site.loader import load_config
from controller.site.paths import REPO_ROOT


@pytest.fixture
def pki(tmp_path):
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl CLI not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=30)
    auth = tmp_path / "metrics-auth"
    auth.write_text("prom:s3cret\n")
    yield str(cert), str(key), str(auth)
    metrics.configure_server_security()


def _args(*extra):
    return build_parser().parse_args(["run", *extra])


def test_options_reach_the_server_the_daemon_starts(pki):
    cert, key, auth = pki
    args = _args("--metrics", "127.0.0.1:9860", "--metrics-tls-cert", cert, "--metrics-tls-key", key,
                 "--metrics-basic-auth-file", auth)
    assert metrics_security(args) is None
    site = load_config(REPO_ROOT / "config/reference-plant.yaml").site
    stop = metrics.DaemonMetrics(site).serve("127.0.0.1", 0)  # as the runtime calls it: no security args
    try:
        ctx = ssl.create_default_context(cafile=cert)
        url = f"https://127.0.0.1:{stop.port}/metrics"
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url, context=ctx, timeout=5)
        assert err.value.code == 401
        token = base64.b64encode(b"prom:s3cret").decode()
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": f"Basic {token}"}),
                                    context=ctx, timeout=5) as resp:
            assert resp.status == 200
    finally:
        stop()


def test_bad_combinations_are_one_line(pki, tmp_path):
    cert, key, auth = pki
    assert "go together" in metrics_security(_args("--metrics-tls-cert", cert))
    assert "no such file" in metrics_security(_args("--metrics-tls-cert", cert, "--metrics-tls-key",
                                                    str(tmp_path / "none.pem")))
    assert "in clear" in metrics_security(_args("--metrics", "0.0.0.0:9860", "--metrics-basic-auth-file", auth))
    bad = tmp_path / "bad-auth"
    bad.write_text("no-colon\n")
    assert "USER:PASSWORD" in metrics_security(_args("--metrics-basic-auth-file", str(bad)))
