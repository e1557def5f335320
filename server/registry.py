"""The served models, found by name or alias."""

from __future__ import annotations

from server.errors import InvalidRequestError, ModelNotFoundError
from server.limits.limiter import current_admission
from server.model_runtime import ModelRuntime


class ModelRegistry:
    def __init__(self) -> None:
        self._by_name: dict[str, ModelRuntime] = {}
        self.runtimes: list[ModelRuntime] = []

    def add(self, runtime: ModelRuntime) -> None:
        for name in runtime.names:
            if name in self._by_name:
                raise ValueError(f"model name {name!r} is used by two models")
        for name in runtime.names:
            self._by_name[name] = runtime
        self.runtimes.append(runtime)

    @property
    def names(self) -> list[str]:
        return list(self._by_name)

    def get(self, name: str | None) -> ModelRuntime:
        if name is None:
            if len(self.runtimes) == 1:
                return self.runtimes[0]
            raise InvalidRequestError(
                f"several models are served; name one in `model` ({', '.join(self.names)})", param="model"
            )
        runtime = self._by_name.get(name)
        if runtime is None:
            raise ModelNotFoundError(
                f"The model {name!r} does not exist on this server; served models: {', '.join(self.names)}",
                param="model",
            )
        return runtime

    def for_request(self, name: str | None) -> ModelRuntime:
        """`get`, for the tenant of the request being answered: a model it may not use is
        answered like one that is not served, and only its own models are listed."""
        admission = current_admission()
        if admission is None or admission.tenant.models is None:
            return self.get(name)
        tenant = admission.tenant
        allowed = [served for served in self.names if tenant.may_use([served])]
        try:
            runtime = self.get(name)
        except ModelNotFoundError:
            tenant.require_model(name, [], allowed)
            raise
        tenant.require_model(name, runtime.names, allowed)
        return runtime
