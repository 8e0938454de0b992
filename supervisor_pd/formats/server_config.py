"""MindIE Server `config.json` (reference §1): the fields supervisor_pd checks, uses or rewrites."""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import Field, StrictBool, StrictInt, StrictStr, field_validator

from supervisor_pd.formats.common import OpenModel


class HealthCheckSection(OpenModel):
    npuUsageThreshold: Annotated[StrictInt, Field(ge=0, le=100)] = 0


class ServerSection(OpenModel):
    ipAddress: StrictStr
    managementIpAddress: StrictStr | None = None
    port: StrictInt
    managementPort: StrictInt | None = None
    metricsPort: StrictInt
    interCommPort: StrictInt | None = None
    allowAllZeroIpListening: StrictBool
    maxLinkNum: Annotated[StrictInt, Field(ge=1, le=4096)]
    httpsEnabled: StrictBool
    inferMode: StrictStr
    interCommTLSEnabled: StrictBool | None = None
    tokenTimeout: Annotated[StrictInt, Field(ge=1, le=3600)]
    e2eTimeout: Annotated[StrictInt, Field(ge=1, le=65535)]
    HealthCheckConfig: HealthCheckSection | None = None

    @field_validator("inferMode")
    @classmethod
    def _mode(cls, value: str) -> str:
        if value not in {"standard", "dmi"}:
            raise ValueError("must be 'standard' or 'dmi'")
        return value


class ModelSection(OpenModel):
    modelName: Annotated[StrictStr, Field(min_length=1, max_length=256)]
    modelWeightPath: StrictStr
    worldSize: Annotated[StrictInt, Field(ge=1, le=128)]
    tp: Annotated[int, Field(ge=1, le=128)] | None = None

    @field_validator("modelName", "modelWeightPath")
    @classmethod
    def _no_control_characters(cls, value: str) -> str:
        # A newline or escape here is a templating slip (a ConfigMap value with a trailing "\n"):
        # the Server would fail minutes later on a path that does not exist, and clients would
        # see the model's name with it.
        if any(unicodedata.category(ch) == "Cc" for ch in value):
            raise ValueError("must not contain control characters (newline, tab, escape)")
        return value

    @field_validator("tp", mode="before")
    @classmethod
    def _tp(cls, value: object) -> object:
        # `tp` is read only by deploy scripts, which accept "2" as well as 2.
        if isinstance(value, bool):
            raise ValueError("must be a whole number")
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        return value


class ModelDeploySection(OpenModel):
    maxSeqLen: Annotated[StrictInt, Field(ge=1, le=4294967295)]
    ModelConfig: Annotated[list[ModelSection], Field(min_length=1)]


class ScheduleSection(OpenModel):
    cacheBlockSize: Annotated[StrictInt, Field(ge=1, le=128)]
    maxBatchSize: Annotated[StrictInt, Field(ge=1, le=5000)]
    maxIterTimes: Annotated[StrictInt, Field(ge=1, le=4294967294)]
    # Required by the Server; absent is allowed here because MINDIE_PREFILL_BATCH_SIZE may supply it
    # (plan/public_vars.py checks the effective value: 0 = maxBatchSize, else at most maxBatchSize).
    maxPrefillBatchSize: Annotated[StrictInt, Field(ge=0, le=4294967295)] | None = None


class BackendSection(OpenModel):
    backendName: StrictStr
    modelInstanceNumber: Annotated[StrictInt, Field(ge=1, le=10)]
    npuDeviceIds: list[list[StrictInt]]
    multiNodesInferEnabled: StrictBool = False
    ModelDeployConfig: ModelDeploySection
    ScheduleConfig: ScheduleSection


class ServerConfigFile(OpenModel):
    """A whole `config.json` / `config<n>.json`."""

    ServerConfig: ServerSection
    BackendConfig: BackendSection

    @property
    def model(self) -> ModelSection:
        return self.BackendConfig.ModelDeployConfig.ModelConfig[0]

    @property
    def world_size(self) -> int:
        """NPUs per Server: the deploy scripts read `tp` first, the Server reads `worldSize`."""
        return self.model.worldSize
