"""A template's functions run in this process: each handler loaded once from its CodeUri and
invoked as Lambda invokes it, with the context object handlers read."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from pingpost_local.template import (
    ACCOUNT_ID,
    FUNCTION_TYPE,
    function_environment,
    function_properties,
    load_template,
    parameter_values,
    region,
    resolve,
)

Handler = Callable[[dict[str, Any], Any], Any]


class LambdaContext:
    """The context object of the Python runtime, with the attributes handlers read."""

    def __init__(self, function_name: str, memory_limit_in_mb: int, timeout_seconds: float) -> None:
        now = datetime.now(UTC)
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = (
            f"arn:aws:lambda:{region()}:{ACCOUNT_ID}:function:{function_name}"
        )
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"{now:%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
        self.identity: Any = None
        self.client_context: Any = None
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's configured Timeout."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _module_token(text: str) -> str:
    """Make text usable inside a module name."""
    return re.sub(r"\W", "_", text)


class LocalFunction:
    """One template function: its handler loaded once from CodeUri, invoked like Lambda."""

    def __init__(
        self,
        function_id: str,
        code_dir: Path,
        handler: str,
        environment: Mapping[str, str],
        *,
        function_name: str | None = None,
        memory_limit_in_mb: int = 128,
        timeout_seconds: float = 3.0,
        serialize: bool = True,
    ) -> None:
        self.function_id = function_id
        self.code_dir = code_dir
        self.handler_name = handler
        self.environment = dict(environment)
        self.function_name = function_name or function_id
        self.memory_limit_in_mb = memory_limit_in_mb
        self.timeout_seconds = timeout_seconds
        self._handler: Handler | None = None
        self._load_lock = threading.Lock()
        # One sandbox runs one event at a time; serializing keeps module-level state honest.
        self._invoke_lock: threading.Lock | None = threading.Lock() if serialize else None

    def load(self) -> Handler:
        """Import the handler module once, after exporting the function's environment."""
        with self._load_lock:
            if self._handler is None:
                self._handler = self._import()
            return self._handler

    def _import(self) -> Handler:
        """Load the handler's module from CodeUri under a module name unique to this function."""
        module_path, _, attribute = self.handler_name.rpartition(".")
        if not module_path:
            raise ValueError(
                f"{self.function_id}: Handler {self.handler_name!r} is not module.func"
            )
        relative = Path(*module_path.split("."))
        source = self.code_dir / relative.with_suffix(".py")
        if not source.is_file():
            source = self.code_dir / relative / "__init__.py"
        # Every function has its own app.py, so each gets a module name of its own.
        name = f"_pingpost_local_{_module_token(self.function_id)}_{_module_token(module_path)}"
        spec = importlib.util.spec_from_file_location(name, source)
        if spec is None or spec.loader is None:
            raise ImportError(f"{self.function_id}: cannot load {source}")
        os.environ.update(self.environment)
        module: ModuleType = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        # Sibling modules of app.py import as top-level names, as in the Lambda package root.
        sys.path.insert(0, str(self.code_dir))
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        finally:
            sys.path.remove(str(self.code_dir))
        handler = getattr(module, attribute, None)
        if not callable(handler):
            raise ImportError(f"{self.function_id}: {source} has no callable {attribute!r}")
        loaded: Handler = handler
        return loaded

    def invoke(self, event: dict[str, Any]) -> Any:
        """Call the handler with event and a fresh context; exceptions propagate."""
        handler = self.load()
        context = LambdaContext(self.function_name, self.memory_limit_in_mb, self.timeout_seconds)
        if self._invoke_lock is None:
            return handler(event, context)
        with self._invoke_lock:
            return handler(event, context)


def local_function(
    template_path: Path,
    template: Mapping[str, Any],
    function_id: str,
    physical: Mapping[str, str],
    parameters: Mapping[str, str],
    *,
    environment: Mapping[str, str] | None = None,
    serialize: bool = True,
) -> LocalFunction:
    """A template function as a LocalFunction, with the environment the template gives it (or
    `environment`); `serialize`: one invocation at a time, as in one Lambda sandbox."""
    props = function_properties(template, function_id)
    code_uri, handler = props.get("CodeUri"), props.get("Handler")
    if not isinstance(code_uri, str) or not isinstance(handler, str):
        raise ValueError(f"{function_id}: only a local CodeUri directory can run locally")
    name = props.get("FunctionName")
    return LocalFunction(
        function_id,
        (template_path.parent / code_uri).resolve(),
        handler,
        function_environment(template, function_id, physical, parameters)
        if environment is None
        else environment,
        function_name=name if isinstance(name, str) else None,
        # A parameter may size them (Ref): resolved as CloudFormation would.
        memory_limit_in_mb=int(
            resolve(props.get("MemorySize", 128), physical, parameters, template=template)
        ),
        timeout_seconds=float(
            resolve(props.get("Timeout", 3), physical, parameters, template=template)
        ),
        serialize=serialize,
    )


def in_this_environment(template_path: Path, function_id: str) -> LocalFunction:
    """A template function that runs with this process's environment, for code that has
    exported the functions' environment itself (the tests, the benchmarks); its invocations
    may overlap, as in as many sandboxes."""
    template = load_template(template_path)
    return local_function(
        template_path,
        template,
        function_id,
        {},
        parameter_values(template),
        environment=dict(os.environ),
        serialize=False,
    )


def enabled(value: Any) -> bool:
    """Enabled may be a YAML boolean or a "true"/"false" string."""
    if isinstance(value, str):
        return value.strip().lower() != "false"
    return value is None or bool(value)


def function_events(
    template: Mapping[str, Any], types: Sequence[str]
) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(function id, event name, Type, raw Properties) of every function event of these types."""
    found: list[tuple[str, str, str, dict[str, Any]]] = []
    for function_id, resource in (template.get("Resources") or {}).items():
        if not isinstance(resource, Mapping) or resource.get("Type") != FUNCTION_TYPE:
            continue
        events: Mapping[str, Any] = function_properties(template, function_id).get("Events") or {}
        for event_name, event in events.items():
            if isinstance(event, Mapping) and event.get("Type") in types:
                props = dict(event.get("Properties") or {})
                found.append((function_id, event_name, str(event["Type"]), props))
    return found


def event_settings(
    raw: Mapping[str, Any],
    names: Sequence[str],
    template: Mapping[str, Any],
    parameters: Mapping[str, str],
) -> dict[str, Any]:
    """The event properties the runner reads, resolved; others (a role's !GetAtt) are left."""
    wanted = {name: raw[name] for name in names if name in raw}
    resolved: dict[str, Any] = resolve(wanted, {}, parameters, template=template)
    return resolved
