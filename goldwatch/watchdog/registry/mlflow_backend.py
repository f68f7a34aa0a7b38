"""MLflow backend: the serving pointer is a registered-model alias (e.g. ``models:/fraud@champion``).

Servers that resolve ``models:/NAME@ALIAS`` (MLflow serving, KServe with an MLflow URI, a custom loader) follow
the alias, so moving it is the switch. Staging registers the store artifact as an MLflow model version (tagged
with its goldwatch source and label, reused if it is already there); switching moves the alias, which MLflow's
registry does in one store operation. Reading the alias back is what crash recovery compares with the intent.

goldwatch still owns the verification: the artifact the alias points at is the content-addressed, re-verified
one in the goldwatch store. ``mlflow`` (or ``mlflow-skinny``) is imported only when such a pointer is created.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from goldwatch._optional import require
from goldwatch.errors import RegistryError
from goldwatch.watchdog.registry.pointer import PointerState, Staged

__all__ = ["MlflowAliasPointer"]

_SOURCE_TAG = "goldwatch.source"
_LABEL_TAG = "goldwatch.label"


class MlflowAliasPointer:
    """Serve ``model_name``@``alias`` from an MLflow model registry at ``registry_uri``."""

    layout: str = "mlflow-alias"

    def __init__(self, registry_uri: str, model_name: str, *, alias: str = "champion",
                 tracking_uri: str | None = None) -> None:
        tracking = require("mlflow.tracking", purpose="the MLflow alias serving pointer")
        self.registry_uri = registry_uri
        self.tracking_uri = tracking_uri or registry_uri
        self.model_name = model_name
        self.alias = alias
        self._client: Any = tracking.MlflowClient(tracking_uri=self.tracking_uri, registry_uri=registry_uri)

    @classmethod
    def from_spec(cls, spec: dict[str, str]) -> MlflowAliasPointer:
        return cls(spec["registry_uri"], spec["model"], alias=spec["alias"], tracking_uri=spec.get("tracking_uri"))

    def spec(self) -> dict[str, str]:
        return {"layout": self.layout, "registry_uri": self.registry_uri, "tracking_uri": self.tracking_uri,
                "model": self.model_name, "alias": self.alias}

    def _errors(self) -> tuple[type[BaseException], ...]:
        from mlflow.exceptions import MlflowException

        return (MlflowException,)

    def _alias_version(self) -> Any | None:
        try:
            return self._client.get_model_version_by_alias(self.model_name, self.alias)
        except self._errors():
            # No registered model or no such alias yet: nothing is served through this pointer.
            return None

    def read(self) -> PointerState | None:
        mv = self._alias_version()
        if mv is None:
            return None
        tags = dict(mv.tags or {})
        return PointerState(source=Path(tags.get(_SOURCE_TAG, mv.source)), label=tags.get(_LABEL_TAG, ""),
                            number=int(mv.version))

    def served_path(self) -> Path | None:
        state = self.read()
        return state.source if state else None

    def stage(self, source: Path, *, label: str) -> Staged:
        source = source.resolve()
        try:
            try:
                self._client.get_registered_model(self.model_name)
            except self._errors():
                self._client.create_registered_model(self.model_name)
            existing = [
                mv for mv in self._client.search_model_versions(f"name = '{self.model_name}'")
                if dict(mv.tags or {}).get(_SOURCE_TAG) == str(source)
            ]
            if existing:
                version = str(max(int(mv.version) for mv in existing))
            else:
                created = self._client.create_model_version(
                    self.model_name, source=str(source), tags={_SOURCE_TAG: str(source), _LABEL_TAG: label},
                    description=f"goldwatch {label}",
                )
                version = str(created.version)
        except self._errors() as exc:
            raise RegistryError(f"MLflow refused to register the version ({exc})", where=self.registry_uri,
                                hint="check the MLflow registry URI and permissions") from None
        return Staged(path=source, source=source, label=label, handle=version)

    def switch(self, staged: Staged) -> None:
        if staged.handle is None:
            raise RegistryError("an MLflow switch needs the staged model version", where=self.registry_uri)
        self._client.set_registered_model_alias(self.model_name, self.alias, staged.handle)

    def cleanup(self) -> list[Path]:
        # A staged-but-unaliased model version is a harmless registry entry, reused by the next stage().
        return []
