"""Fetching a status page: one aiohttp session, a deadline on every request.

`StatusClient.fetch` returns the body of a 200 answer as text, or raises
FetchError with a short `reason` (for logs and tests) and a sentence saying
what happened. Redirects are not followed: a redirected status URL is a
configuration mistake better named than hidden, and following one would let
an allow-listed /probe target send the adapter to a host nobody allowed.
"""

from __future__ import annotations

import asyncio
import errno
import ssl

import aiohttp
from yarl import URL

from patterns_common.cli import read_secret_file

from . import __version__
from .config import ClientSettings

# A status page is a few kB (the scoreboard has one byte per worker slot, 400
# for a default event MPM); 4 MiB leaves room for a very large server and
# stops a wrong URL from streaming a file into memory.
MAX_BODY = 4 * 1024 * 1024
USER_AGENT = f"httpd-adapter/{__version__}"


class FetchError(Exception):
    """The page could not be had. `reason` is one of: refused, unreachable,
    timeout, tls, redirect, http_status, too_large, protocol, credentials."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ConfigurationError(Exception):
    """The TLS files cannot be used (checked once, at start-up)."""


def ssl_context(settings: ClientSettings) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file else None
        )
        if settings.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if settings.client_cert is not None:
            context.load_cert_chain(
                settings.client_cert, settings.client_key if settings.client_key else None
            )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"cannot load the TLS files: {exc}") from None
    return context


class StatusClient:
    """One connection pool for every status page this process reads. Create
    it inside the running event loop; `close()` it at the end."""

    def __init__(self, settings: ClientSettings, *, max_body: int = MAX_BODY) -> None:
        self._settings = settings
        self._max_body = max_body
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ssl_context(settings)),
            # The deadline is the caller's (asyncio.timeout in fetch).
            timeout=aiohttp.ClientTimeout(total=None),
            # Uncompressed, so that MAX_BODY bounds what lands in memory.
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
            | dict(settings.headers),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        await self._session.close()

    def _auth(self) -> aiohttp.BasicAuth | None:
        settings = self._settings
        if settings.username is None:
            return None
        password = settings.password or ""
        if settings.password_file is not None:
            try:
                password = read_secret_file(settings.password_file)
            except OSError as exc:
                raise FetchError(
                    "credentials",
                    f"cannot read --password-file {settings.password_file}: {exc.strerror}",
                ) from None
        return aiohttp.BasicAuth(settings.username, password)

    async def fetch(self, url: URL, time_limit: float, host_override: str | None = None) -> str:
        """The body of `url`'s 200 answer, decoded as mod_status encodes it
        (ISO-8859-1), within `time_limit` seconds."""
        try:
            async with asyncio.timeout(time_limit):
                return await self._fetch(url, host_override)
        except TimeoutError:
            raise FetchError("timeout", f"no complete answer within {time_limit:g}s") from None
        except aiohttp.ClientConnectorCertificateError as exc:
            raise FetchError("tls", f"certificate not accepted: {exc.certificate_error}") from None
        except aiohttp.ClientSSLError as exc:
            raise FetchError("tls", f"TLS failed: {_os_message(exc)}") from None
        except aiohttp.ClientConnectorError as exc:
            if exc.os_error.errno == errno.ECONNREFUSED:
                raise FetchError(
                    "refused", f"connection refused by {exc.host}:{exc.port}"
                ) from None
            raise FetchError(
                "unreachable", f"cannot connect to {exc.host}:{exc.port}: {_os_message(exc)}"
            ) from None
        except aiohttp.ClientError as exc:
            raise FetchError("protocol", f"bad answer: {exc or type(exc).__name__}") from None

    async def _fetch(self, url: URL, host_override: str | None) -> str:
        headers = {"Host": host_override} if host_override else None
        async with self._session.get(
            url, headers=headers, auth=self._auth(), allow_redirects=False
        ) as response:
            if 300 <= response.status < 400:
                location = response.headers.get("Location", "nowhere")
                raise FetchError(
                    "redirect",
                    f"answered {response.status} {response.reason}, redirecting to "
                    f"{location[:200]}: point the URL there",
                )
            if response.status != 200:
                raise FetchError("http_status", f"answered {response.status} {response.reason}")
            length = response.content_length
            if length is not None and length > self._max_body:
                raise self._too_large(f"{length} bytes announced")
            if length is not None:
                body = await response.read()
            else:
                body = await self._read_limited(response)
        return body.decode("latin-1")

    async def _read_limited(self, response: aiohttp.ClientResponse) -> bytes:
        chunks = []
        size = 0
        async for chunk in response.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > self._max_body:
                raise self._too_large("more than that sent")
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, detail: str) -> FetchError:
        return FetchError(
            "too_large",
            f"body larger than {self._max_body // 1024} KiB ({detail}): not a status page",
        )


def _os_message(exc: aiohttp.ClientConnectorError | aiohttp.ClientSSLError) -> str:
    return exc.os_error.strerror or str(exc.os_error) or type(exc.os_error).__name__
