"""moto_server over TLS, for JVM clients that cannot be pointed at a plain-HTTP endpoint.

The AWS SDK v1 DynamoDB client inside Delta's S3DynamoDBLogStore has no endpoint setting: the only
redirect is the SDK's region-metadata override (RegionUtils.fileOverride), and the scheme still
comes from the client configuration, which is HTTPS. So the local server must speak TLS with a
certificate the JVM trusts: a throwaway self-signed one, made per test with openssl and keytool.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3

from tests.local_servers import free_port

REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
TRUSTSTORE_PASSWORD = "changeit"


@dataclass(frozen=True)
class Tls:
    cert: Path  # PEM, for moto_server and for boto3's verify=
    key: Path
    truststore: Path  # PKCS12 holding the cert, for the JVM's javax.net.ssl.trustStore


def make_tls(folder: Path) -> Tls:
    """A self-signed certificate for 127.0.0.1 (the SAN is what TLS clients check, not the CN)."""
    tls = Tls(folder / "cert.pem", folder / "key.pem", folder / "truststore.p12")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(tls.key), "-out", str(tls.cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        ["keytool", "-importcert", "-noprompt", "-alias", "moto", "-file", str(tls.cert),
         "-keystore", str(tls.truststore), "-storetype", "PKCS12", "-storepass", TRUSTSTORE_PASSWORD],
        check=True, capture_output=True,
    )  # fmt: skip
    return tls


def regions_override(path: Path, port: int) -> Path:
    """SDK v1 region metadata that sends us-east-1's DynamoDB (and S3, STS) to 127.0.0.1:port."""
    endpoints = "".join(
        f"<Endpoint><ServiceName>{service}</ServiceName><Http>true</Http><Https>true</Https>"
        f"<Hostname>127.0.0.1:{port}</Hostname></Endpoint>"
        for service in ("dynamodb", "s3", "sts")
    )
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<XmlRegionMetadata><Regions><Region>'
        f"<Name>{REGION}</Name><Domain>amazonaws.com</Domain>{endpoints}</Region></Regions></XmlRegionMetadata>\n",
        encoding="utf-8",
    )
    return path


def jvm_options(tls: Tls, regions_xml: Path) -> str:
    """Driver JVM options: the region override, and trust in the throwaway certificate."""
    return " ".join(
        [
            f"-Dcom.amazonaws.regions.RegionUtils.fileOverride={regions_xml}",
            f"-Djavax.net.ssl.trustStore={tls.truststore}",
            f"-Djavax.net.ssl.trustStorePassword={TRUSTSTORE_PASSWORD}",
            "-Djavax.net.ssl.trustStoreType=PKCS12",
        ]
    )


@dataclass(frozen=True)
class TlsMoto:
    endpoint: str
    port: int
    tls: Tls

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION, verify=str(self.tls.cert),
                            **CREDENTIALS)  # fmt: skip


@contextmanager
def tls_moto_server(tls: Tls, log: Path) -> Iterator[TlsMoto]:
    """moto_server (S3 + DynamoDB) on a free port over HTTPS, in a process of its own."""
    port = free_port()
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port),
             "-c", str(tls.cert), "-k", str(tls.key)],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    moto = TlsMoto(f"https://127.0.0.1:{port}", port, tls)
    try:
        _wait_until_ready(moto, server)
        yield moto
    finally:
        server.terminate()
        server.wait(10)


def _wait_until_ready(moto: TlsMoto, server: subprocess.Popen[bytes]) -> None:
    # A bare connect, not an API call: botocore would back off and retry a refused connection itself.
    for _ in range(100):
        if server.poll() is not None:
            raise RuntimeError(f"moto_server exited with {server.returncode}")
        try:
            socket.create_connection(("127.0.0.1", moto.port), timeout=0.5).close()
            moto.client("s3").list_buckets()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"moto_server did not answer on {moto.endpoint} within 10 s")
