"""A small client of the settings API for the command line (the standard library's urllib)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

DEFAULT_URL = "http://localhost:6066"


class ApiError(Exception):
    """A refusal from the API: the status, its message and the field errors."""

    def __init__(self, status: int, error: str, errors: list[dict[str, str]] | None = None,
                 body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status}: {error}")
        self.status = status
        self.error = error
        self.errors = errors or []
        self.body = body or {}  # the whole answer (a 412 says the current version and who)

    def lines(self) -> list[str]:
        out = [f"refused ({self.status}): {self.error}"]
        for e in self.errors:
            field = e.get("field") or ""
            out.append(f"  {field}: {e.get('message')}" if field else f"  {e.get('message')}")
        return out


class Client:
    def __init__(self, url: str = DEFAULT_URL, token: str | None = None,
                 timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _path(self, account_id: str, tail: str = "") -> str:
        return f"/accounts/{urllib.parse.quote(account_id, safe='')}/handoff-settings{tail}"

    def request(self, method: str, path: str, body: Any = None,
                extra: dict[str, str] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json", **(extra or {})}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                doc = json.loads(raw)
            except ValueError:
                doc = {"error": raw.decode("utf-8", "replace")[:500] or exc.reason}
            if not isinstance(doc, dict):
                doc = {"error": str(doc)}
            raise ApiError(exc.code, str(doc.get("error")), doc.get("errors"), doc) from None
        except urllib.error.URLError as exc:
            raise ApiError(0, f"cannot reach {self.url}: {exc.reason}") from None

    def get_settings(self, account_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", self._path(account_id))
        return result

    def put_settings(self, account_id: str, config: dict[str, Any],
                     if_version: int | None = None) -> dict[str, Any]:
        """Save; with `if_version`, only if that is still the current version (else 412)."""
        extra = {} if if_version is None else {"If-Match": f'"{if_version}"'}
        result: dict[str, Any] = self.request("PUT", self._path(account_id), config, extra)
        return result

    def validate(self, account_id: str, config: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", self._path(account_id, "/validate"), config)
        return result

    def history(self, account_id: str, limit: int = 100) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "GET", self._path(account_id, f"/history?limit={limit}"))
        return result
