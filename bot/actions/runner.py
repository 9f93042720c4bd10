"""Runs custom actions written with rasa-sdk: in process through rasa-sdk's ActionExecutor, or
over HTTP against a rasa-sdk action server when endpoints.yml names an `action_endpoint`."""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RASA_VERSION = "3.6.21"  # the wire format version we speak
log = logging.getLogger(__name__)


class ActionFailed(Exception):
    """A custom action could not run (server down, timeout, exception, bad response)."""


class ActionRejected(Exception):
    """The action refused to run (rasa-sdk ActionExecutionRejection)."""


@dataclass
class ActionResult:
    events: list[dict[str, Any]] = field(default_factory=list)
    responses: list[dict[str, Any]] = field(default_factory=list)


def action_call(name: str, tracker: dict[str, Any], domain: dict[str, Any]) -> dict[str, Any]:
    """The payload Rasa sends an action server (top-level keys exactly as Rasa 3.6)."""
    return {"next_action": name, "sender_id": tracker["sender_id"], "tracker": tracker, "domain": domain,
            "version": RASA_VERSION}


class InProcessRunner:
    """rasa-sdk's own ActionExecutor with the project's `actions` package registered."""

    def __init__(self, project_root: Path, package: str = "actions") -> None:
        from rasa_sdk.executor import ActionExecutor

        root = str(project_root)
        if root not in sys.path:
            sys.path.insert(0, root)
        self.executor = ActionExecutor()
        if (project_root / package).exists() or importlib.util.find_spec(package):
            self.executor.register_package(package)

    @property
    def names(self) -> set[str]:
        return set(self.executor.actions)

    async def run(self, name: str, tracker: dict[str, Any], domain: dict[str, Any]) -> ActionResult:
        from rasa_sdk.interfaces import ActionExecutionRejection, ActionNotFoundException

        try:
            result = await self.executor.run(action_call(name, tracker, domain))
        except ActionExecutionRejection as exc:
            raise ActionRejected(str(exc)) from exc
        except ActionNotFoundException as exc:
            raise ActionFailed(f"no custom action named `{name}` in actions/") from exc
        except Exception as exc:  # an action's own bug must not take the conversation down
            log.exception("custom action %s failed", name)
            raise ActionFailed(f"{name} raised {type(exc).__name__}") from exc
        if result is None:
            return ActionResult()
        return ActionResult(list(result.events), list(result.responses))

    async def close(self) -> None:
        return None


class HttpRunner:
    """POSTs Rasa's action-call payload to an action server (e.g. `python -m rasa_sdk`)."""

    def __init__(self, url: str, timeout: float = 10.0, token: str | None = None) -> None:
        self.url = url
        self.timeout = timeout
        self.headers = {"Authorization": token} if token else {}
        self._session = None
        self.names: set[str] | None = None  # unknown until called

    async def _client(self):
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    async def run(self, name: str, tracker: dict[str, Any], domain: dict[str, Any]) -> ActionResult:
        import aiohttp

        session = await self._client()
        try:
            async with session.post(self.url, json=action_call(name, tracker, domain), headers=self.headers) as resp:
                body = await resp.json(content_type=None)
                if resp.status == 400 and isinstance(body, dict) and body.get("action_name"):
                    raise ActionRejected(str(body.get("error")))
                if resp.status != 200 or not isinstance(body, dict):
                    raise ActionFailed(f"action server answered {resp.status} for {name}")
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise ActionFailed(f"action server at {self.url} unreachable or too slow for {name}: "
                               f"{type(exc).__name__}") from exc
        return ActionResult(list(body.get("events") or []), list(body.get("responses") or []))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def create_runner(project_root: Path, endpoints: dict[str, Any], timeout: float) -> InProcessRunner | HttpRunner:
    endpoint = endpoints.get("action_endpoint") or {}
    if isinstance(endpoint, dict) and endpoint.get("url"):
        return HttpRunner(str(endpoint["url"]), float(endpoint.get("timeout", timeout)), endpoint.get("token"))
    return InProcessRunner(project_root)
