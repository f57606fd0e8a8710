"""Validate a Camtrap DP package offline with ``frictionless``, against the schemas shipped here.

A Camtrap DP ``datapackage.json`` names its profile and table schemas by URL (that is what GBIF and
camtrapR expect), and the profile itself refers to the Frictionless Data Package schema and to the
GeoJSON schema by URL. Nothing may be fetched at run time, so validation hands frictionless an HTTP
session whose only transport answers those exact URLs from ``camtrap_dp/`` and refuses every other
request: a validation that passes here passes for the same reason it would online, and one that
needed the network fails loudly instead of silently skipping a check.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from lit_edge.errors import UserError, require

log = logging.getLogger(__name__)

CAMTRAP_DP_VERSION = "1.0.2"
CAMTRAP_DP_BASE = f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{CAMTRAP_DP_VERSION}/"
PROFILE_URL = CAMTRAP_DP_BASE + "camtrap-dp-profile.json"
TABLE_SCHEMA_URLS = {
    name: f"{CAMTRAP_DP_BASE}{name}-table-schema.json" for name in ("deployments", "media", "observations")
}

#: URL -> shipped file name in ``lit_edge/fielddata/camtrap_dp``.
SHIPPED = {
    PROFILE_URL: "camtrap-dp-profile.json",
    **{url: f"{name}-table-schema.json" for name, url in TABLE_SCHEMA_URLS.items()},
    "https://specs.frictionlessdata.io/schemas/data-package.json": "data-package.json",
    "http://json.schemastore.org/geojson.json": "geojson.json",
    "https://json.schemastore.org/geojson.json": "geojson.json",
}


def shipped_schema(name: str) -> bytes:
    """The bytes of one shipped schema file."""
    return resources.files("lit_edge.fielddata").joinpath("camtrap_dp", name).read_bytes()


def _offline_session():
    """A ``requests`` session that serves the shipped schemas and refuses every other URL."""
    requests = require("requests", "dev")
    from requests.adapters import BaseAdapter

    class ShippedSchemas(BaseAdapter):
        def send(self, request, **kwargs):
            url = request.url.split("#", 1)[0]
            name = SHIPPED.get(url)
            if name is None:
                raise requests.ConnectionError(
                    f"lit-edge validates offline and has no shipped copy of {url}", request=request
                )
            import io

            resp = requests.Response()
            resp.status_code = 200
            resp.url = request.url
            resp.request = request
            body = shipped_schema(name)
            resp.raw = io.BytesIO(body)
            resp.raw.decode_content = True  # what frictionless sets; harmless on BytesIO
            resp.headers["Content-Type"] = "application/json"
            resp.headers["Content-Length"] = str(len(body))
            return resp

        def close(self):
            pass

    session = requests.Session()
    session.mount("http://", ShippedSchemas())
    session.mount("https://", ShippedSchemas())
    return session


@dataclass(frozen=True)
class ValidationResult:
    """The outcome of validating a package: ``valid`` and one line per error."""

    valid: bool
    errors: tuple[str, ...]


def validate_package(descriptor: Path) -> ValidationResult:
    """Validate ``datapackage.json`` (metadata against the profile, every table against its schema)."""
    frictionless = require("frictionless", "dev")
    descriptor = Path(descriptor)
    if not descriptor.is_file():
        raise UserError(f"{descriptor}: no datapackage.json here; export one with 'lit-edge db export'")
    # untrusted (frictionless' default): a package's data paths must stay inside its folder, so
    # validating someone else's package never reads other local files.
    with frictionless.system.use_context(http_session=_offline_session()):
        report = frictionless.validate(str(descriptor))
    errors = tuple(
        f"{task.name or task.place}: {err.type}: {err.message}"
        for task in report.tasks
        for err in task.errors
    ) + tuple(f"package: {err.type}: {err.message}" for err in report.errors)
    return ValidationResult(valid=bool(report.valid), errors=errors)
