"""The model stage's typed configs, each built from :class:`~sentinel42.settings.Settings`.

``Settings`` is read once at the entry (a flow, a CLI command, a pipeline step), which builds the
config of the stage it calls with ``X.from_settings(settings)``; the stage functions take that
config, so what a stage reads is written here and nowhere else. The environment names are the
settings' own (``SENTINEL42_MODEL_WINDOW`` fills :attr:`TrainingConfig.window`, and so on).

- :class:`RegistryConfig`: where the model registry lives.
- :class:`GateConfig`: the promotion gate's settings, which the news leg's gate shares.
- :class:`TrainingConfig`: the direction LSTM's and the ranking models' training and gate.
- :class:`InferenceConfig`: what a trading run needs to load and use the promoted model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar, cast, overload

if TYPE_CHECKING:
    from sentinel42.market.calendar import NyseCalendar
    from sentinel42.model.registry import ModelRegistry
    from sentinel42.settings import Settings

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RegistryConfig:
    """Where the model registry lives: a folder, or a URL several hosts share."""

    models_location: str | Path  # SENTINEL42_MODELS_URL, else <SENTINEL42_DATA_DIR>/models

    @classmethod
    def from_settings(cls, settings: Settings) -> RegistryConfig:
        return cls(models_location=settings.models_location)

    def open(self, kind: str | None = None) -> ModelRegistry:
        """The direction model's registry, or with ``kind`` the ``ranking-<kind>`` one under it."""
        from sentinel42.model.storage import open_registry

        if kind is None:
            return open_registry(self.models_location)
        sub = f"ranking-{kind}"
        if isinstance(self.models_location, Path):
            return open_registry(self.models_location / sub)
        return open_registry(f"{str(self.models_location).rstrip('/')}/{sub}")


@dataclass(frozen=True, slots=True)
class GateConfig:
    """The promotion gate's settings: one home for the ranking models' gate and the news leg's.

    :class:`TrainingConfig` and :class:`~sentinel42.model.ranking.news_leg.NewsLegConfig` each
    hold one, so both gates read the same five settings from the same env names.
    """

    confidence: float  # SENTINEL42_MODEL_GATE_CONFIDENCE
    window_days: int  # SENTINEL42_MODEL_GATE_WINDOW_DAYS: attempts this recent correct it
    max_age_sessions: int  # SENTINEL42_MODEL_MAX_AGE_SESSIONS: older verdicts have expired
    cost_bps: float  # SENTINEL42_COST_BPS: the one-way cost a long-short must pay
    seed: int  # SENTINEL42_MODEL_SEED: the bootstrap's (and the training's) seed

    @classmethod
    def from_settings(cls, settings: Settings) -> GateConfig:
        s = settings
        return cls(confidence=s.model_gate_confidence, window_days=s.model_gate_window_days,
                   max_age_sessions=s.model_max_age_sessions, cost_bps=s.cost_bps,
                   seed=s.model_seed)  # fmt: skip


class _FromGate(Generic[T]):
    """A read-only attribute of a config that is its held :class:`GateConfig`'s ``field``."""

    def __init__(self, field: str) -> None:
        self.field = field

    @overload
    def __get__(self, config: None, owner: type[TrainingConfig]) -> _FromGate[T]: ...
    @overload
    def __get__(self, config: TrainingConfig, owner: type[TrainingConfig]) -> T: ...
    def __get__(
        self, config: TrainingConfig | None, owner: type[TrainingConfig]
    ) -> T | _FromGate[T]:
        return self if config is None else cast(T, getattr(config.gate, self.field))


@dataclass(frozen=True, slots=True)
class TrainingConfig:
    """Training, walk-forward evaluation and the promotion gate (``SENTINEL42_MODEL_*``)."""

    registry: RegistryConfig
    calendar: NyseCalendar  # NYSE sessions with the settings' extra closures and early closes
    gate: GateConfig
    interval_minutes: int  # SENTINEL42_INTERVAL
    window: int  # bars per input window
    horizon: int  # bars ahead predicted
    hidden_size: int
    layers: int
    dropout: float
    epochs: int
    patience: int
    batch_size: int
    learning_rate: float

    @classmethod
    def from_settings(cls, settings: Settings) -> TrainingConfig:
        from sentinel42.factory import build_calendar

        return cls(
            registry=RegistryConfig.from_settings(settings),
            calendar=build_calendar(settings),
            gate=GateConfig.from_settings(settings),
            interval_minutes=settings.interval_minutes,
            window=settings.model_window,
            horizon=settings.model_horizon,
            hidden_size=settings.model_hidden_size,
            layers=settings.model_layers,
            dropout=settings.model_dropout,
            epochs=settings.model_epochs,
            patience=settings.model_patience,
            batch_size=settings.model_batch_size,
            learning_rate=settings.model_learning_rate,
        )

    # The gate's settings, read through ``gate``, under the names the training code uses.
    seed = _FromGate[int]("seed")
    gate_confidence = _FromGate[float]("confidence")
    gate_window_days = _FromGate[int]("window_days")
    max_age_sessions = _FromGate[int]("max_age_sessions")  # older incumbents don't defend
    cost_bps = _FromGate[float]("cost_bps")


@dataclass(frozen=True, slots=True)
class InferenceConfig:
    """What a trading run needs to load the promoted direction model and predict with it."""

    registry: RegistryConfig
    interval_minutes: int  # SENTINEL42_INTERVAL: the bars the watchlist runs at
    max_age_sessions: int  # SENTINEL42_MODEL_MAX_AGE_SESSIONS: older models are refused

    @classmethod
    def from_settings(cls, settings: Settings) -> InferenceConfig:
        return cls(
            registry=RegistryConfig.from_settings(settings),
            interval_minutes=settings.interval_minutes,
            max_age_sessions=settings.model_max_age_sessions,
        )
