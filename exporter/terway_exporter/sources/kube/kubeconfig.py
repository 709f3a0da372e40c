"""Check a kubeconfig before the exporter starts, so a file that cannot work is an error at start.

The asyncio client loads the kubeconfig inside the Kubernetes source's task; an error there used
to be retried forever (or, for invalid YAML, kill the task unseen) while /readyz said ready. This
runs the same loader once up front and then checks what the loader leaves for connect time: the
server URL, the CA bundle and the client certificate. Messages name the file and the field, never
a value from the file (a kubeconfig holds tokens and keys), and YAML errors give only a position.
"""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit

import yaml
from kubernetes import client, config


class KubeconfigError(ValueError):
    """The kubeconfig cannot work; the message is safe to print."""


def check_kubeconfig(path: str, context: str | None = None) -> None:
    """Raise KubeconfigError when the kubeconfig at `path` cannot configure a client."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except OSError as err:
        raise KubeconfigError(f"cannot read {path!r}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise KubeconfigError(f"{path!r} is not UTF-8 text") from None
    except yaml.YAMLError as err:
        raise KubeconfigError(f"{path!r} is not valid YAML{_position(err)}") from None
    if not isinstance(data, dict):
        raise KubeconfigError(f"{path!r} must hold a kubeconfig mapping (apiVersion, clusters, contexts, users), "
                              f"not {_kind(data)}")
    for key in ("clusters", "contexts"):
        if not isinstance(data.get(key), list) or not data[key]:
            raise KubeconfigError(f"{path!r} has no {key}")
    configuration = client.Configuration()
    try:
        # The sync loader shares its parsing with the asyncio one the source uses.
        config.load_kube_config(config_file=path, context=context, client_configuration=configuration,
                                persist_config=False)
    except config.ConfigException as err:
        raise KubeconfigError(f"{path!r}: {_first_line(err)}") from None
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise KubeconfigError(f"{path!r}: malformed entry ({type(err).__name__})") from None
    _check_server(path, configuration.host)
    _check_tls(path, configuration)


def _check_server(path: str, host: str | None) -> None:
    try:
        url = urlsplit(host or "")
        port = url.port  # raises ValueError on a non-numeric or out-of-range port
    except ValueError:
        raise KubeconfigError(f"{path!r}: the cluster's server is not a URL (https://HOST[:PORT])") from None
    if url.scheme not in ("http", "https") or not url.hostname:
        raise KubeconfigError(f"{path!r}: the cluster's server must be an http(s) URL with a host")
    del port


def _check_tls(path: str, configuration: client.Configuration) -> None:
    context = ssl.create_default_context()
    if configuration.ssl_ca_cert:
        try:
            context.load_verify_locations(cafile=configuration.ssl_ca_cert)
        except (OSError, ssl.SSLError):
            raise KubeconfigError(f"{path!r}: certificate-authority(-data) is not a readable PEM CA bundle") from None
    cert_file, key_file = configuration.cert_file, configuration.key_file
    if cert_file or key_file:
        unusable = KubeconfigError(f"{path!r}: client-certificate and client-key (or their -data) do not load "
                                   "as a PEM certificate and its key")
        if not cert_file:  # a key without a certificate
            raise unusable
        try:
            context.load_cert_chain(cert_file, key_file)
        except (OSError, ssl.SSLError, TypeError):
            raise unusable from None


def _position(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or ""
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{where}: {problem}" if problem else where


def _kind(value: object) -> str:
    return "an empty file" if value is None else f"a {type(value).__name__}"


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
