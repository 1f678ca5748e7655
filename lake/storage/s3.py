"""S3 settings, resolved once from the usual AWS sources and handed to every client.

A lake on S3 is read and written by four clients — delta-rs, pyarrow, s3fs (DuckDB and the lake
log) and polars — and each takes its settings in its own form. `S3Settings` resolves the
endpoint, region and credentials once, in the order AWS tools use: the storage options given
to `lake.open`, then the environment (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`,
`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
`AWS_DEFAULT_REGION`), then the shared config and credentials files (`AWS_PROFILE`). Secrets
never appear in its repr, in the lake or in an error message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import pyarrow.fs as pafs

_ALIASES = {
    "endpoint": ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT", "ENDPOINT_URL"),
    "key": ("AWS_ACCESS_KEY_ID", "ACCESS_KEY_ID", "KEY"),
    "secret": ("AWS_SECRET_ACCESS_KEY", "SECRET_ACCESS_KEY", "SECRET"),
    "token": ("AWS_SESSION_TOKEN", "SESSION_TOKEN", "TOKEN"),
    "region": ("AWS_REGION", "AWS_DEFAULT_REGION", "REGION", "REGION_NAME"),
    "profile": ("AWS_PROFILE", "PROFILE"),
}


@dataclass(frozen=True)
class S3Settings:
    """Endpoint, region and credentials of an S3 lake (secrets hidden from repr)."""

    endpoint: str | None = None
    region: str = "us-east-1"
    key: str | None = field(default=None, repr=False)
    secret: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    @staticmethod
    def resolve(options: Mapping[str, str] | None = None) -> S3Settings:
        """Settings from `options`, else the environment, else the AWS profile files."""
        given = {k.upper(): v for k, v in (options or {}).items() if v is not None}

        def pick(name: str) -> str | None:
            for alias in _ALIASES[name]:
                if given.get(alias):
                    return given[alias]
            for alias in _ALIASES[name]:
                if alias.startswith("AWS_") and os.environ.get(alias):
                    return os.environ[alias]
            return None

        key, secret, token = pick("key"), pick("secret"), pick("token")
        region = pick("region")
        if key is None or region is None:
            profile_key, profile_secret, profile_token, profile_region = _profile(pick("profile"))
            if key is None:
                key, secret, token = profile_key, profile_secret, profile_token
            region = region or profile_region
        return S3Settings(
            endpoint=pick("endpoint"),
            region=region or "us-east-1",
            key=key,
            secret=secret,
            token=token,
        )

    @property
    def allow_http(self) -> bool:
        """Whether the endpoint is plain HTTP (a local test server)."""
        return bool(self.endpoint and self.endpoint.startswith("http://"))

    def delta_options(self) -> dict[str, str]:
        """Storage options for delta-rs and polars (object_store keys)."""
        out = {"AWS_REGION": self.region}
        if self.endpoint:
            out["AWS_ENDPOINT_URL"] = self.endpoint
        if self.allow_http:
            out["AWS_ALLOW_HTTP"] = "true"
        if self.key:
            out["AWS_ACCESS_KEY_ID"] = self.key
            out["AWS_SECRET_ACCESS_KEY"] = self.secret or ""
        if self.token:
            out["AWS_SESSION_TOKEN"] = self.token
        return out

    def arrow_fs(self) -> pafs.S3FileSystem:
        """A pyarrow S3 filesystem."""
        endpoint = self.endpoint
        return pafs.S3FileSystem(
            access_key=self.key,
            secret_key=self.secret,
            session_token=self.token,
            region=self.region,
            endpoint_override=endpoint.split("://", 1)[-1] if endpoint else None,
            scheme="http" if self.allow_http else "https",
        )

    def s3fs(self):
        """An s3fs filesystem (imported here: only S3 lakes need it)."""
        import s3fs

        return s3fs.S3FileSystem(
            key=self.key,
            secret=self.secret,
            token=self.token,
            endpoint_url=self.endpoint,
            client_kwargs={"region_name": self.region},
            skip_instance_cache=True,
        )

    def secrets(self) -> tuple[str, ...]:
        """The secret values, for scrubbing them from messages."""
        return tuple(s for s in (self.secret, self.token) if s)


def _profile(name: str | None) -> tuple[str | None, str | None, str | None, str | None]:
    """Credentials and region of an AWS profile from the shared files (botocore)."""
    try:
        import botocore.session
    except ImportError:  # pragma: no cover - s3fs brings botocore
        return None, None, None, None
    try:
        session = botocore.session.Session(profile=name)
        credentials = session.get_credentials()
        region = session.get_config_variable("region")
    except Exception:  # a missing or broken profile: fall back to anonymous defaults
        return None, None, None, None
    if credentials is None:
        return None, None, None, region
    frozen = credentials.get_frozen_credentials()
    return frozen.access_key, frozen.secret_key, frozen.token, region


def scrub(text: str, settings: S3Settings | None) -> str:
    """`text` with every secret of `settings` replaced by '***'."""
    if settings is None:
        return text
    for secret in settings.secrets():
        text = text.replace(secret, "***")
    return text
