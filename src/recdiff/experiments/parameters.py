"""The kinds of search-space entry (float, int, categorical), as pydantic models that check
their ranges and choices; :mod:`recdiff.experiments.space` reads a space file into them."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, model_validator

__all__ = ["CategoricalParam", "FloatParam", "IntParam", "Parameter"]

#: The value types optuna's categorical distributions hold as they are.
_PRIMITIVES = (type(None), bool, int, float, str)


def _not_boolean(value: Any) -> Any:
    """YAML's true/false where a number belongs: pydantic would read them as 1 and 0 (a bool is
    an int in Python), so ``low: true`` would silently mean ``low: 1``."""
    if isinstance(value, bool):
        raise ValueError(f"must be a number, not a boolean ({str(value).lower()})")
    return value


_Float = Annotated[float, BeforeValidator(_not_boolean)]
_Int = Annotated[int, BeforeValidator(_not_boolean)]


class FloatParam(BaseModel):
    """A real-valued setting drawn from [low, high] (log-uniform if ``log``)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["float"]
    low: _Float = Field(description="smallest value")
    high: _Float = Field(description="largest value")
    log: StrictBool = Field(
        False, description="sample on a log scale (learning rates, noise scales)"
    )
    step: _Float | None = Field(None, gt=0, description="discretisation step (not with log)")
    fraction_of: str | None = Field(None, description="the value times this integer setting")

    @model_validator(mode="after")
    def _check(self) -> FloatParam:
        for name, value in (("low", self.low), ("high", self.high)):
            if not math.isfinite(value):
                raise ValueError(f"{name} ({value}) must be a finite number")
        _check_range(self.low, self.high)
        if not self.log and not math.isfinite(self.high - self.low):
            raise ValueError(
                f"the range {self.low}..{self.high} is too wide to sample from; narrow it"
            )
        if self.log and self.low <= 0:
            raise ValueError(f"log: true needs low > 0, got low={self.low}")
        if self.log and self.step is not None:
            raise ValueError("step cannot be combined with log: true; drop one of them")
        if self.step is not None:
            # As Optuna judges it (decimally): else it warns before every trial and samples a
            # range cut short, a step of 0.5 over 1e-4..1e-3 leaving 1e-4 alone.
            low, high, step = (Decimal(str(v)) for v in (self.low, self.high, self.step))
            _check_step(low, high, step)
        return self

    def candidates(self) -> list[Any]:
        """A few values across the range (to check that the key can be set at all)."""
        middle = math.sqrt(self.low * self.high) if self.log else (self.low + self.high) / 2
        return [self.low, middle, self.high]


class IntParam(BaseModel):
    """An integer setting drawn from [low, high] (log-uniform if ``log``)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["int"]
    low: _Int = Field(description="smallest value")
    high: _Int = Field(description="largest value")
    log: StrictBool = Field(False, description="sample on a log scale (e.g. diffusion steps)")
    step: _Int = Field(1, ge=1, description="spacing of the values (1 with log)")

    @model_validator(mode="after")
    def _check(self) -> IntParam:
        _check_range(self.low, self.high)
        if self.log and self.low < 1:
            raise ValueError(f"log: true needs low >= 1, got low={self.low}")
        if self.log and self.step != 1:
            raise ValueError("step cannot be combined with log: true; drop one of them")
        _check_step(Decimal(self.low), Decimal(self.high), Decimal(self.step))
        return self

    def candidates(self) -> list[Any]:
        return [self.low, self.high]


class CategoricalParam(BaseModel):
    """A setting taking one of listed values (numbers, strings, lists such as hidden sizes)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["categorical"]
    choices: list[Any] = Field(min_length=1, description="the values to choose from")
    fraction_of: str | None = Field(None, description="each choice times this integer setting")

    @model_validator(mode="after")
    def _check(self) -> CategoricalParam:
        texts = [json.dumps(c, sort_keys=True) for c in self.choices]
        repeated = sorted({t for t in texts if texts.count(t) > 1})
        if repeated:
            raise ValueError(f"choices must be distinct; repeated: {', '.join(repeated)}")
        if self.fraction_of is not None:
            # A boolean would be multiplied as 1 or 0, a string fail only when a trial applies it.
            odd = [c for c in self.choices if isinstance(c, bool) or not isinstance(c, int | float)]
            if odd:
                raise ValueError(
                    f"with fraction_of, choices must be numbers (fractions of "
                    f"{self.fraction_of}); not {', '.join(json.dumps(c) for c in odd)}"
                )
        return self

    @property
    def encoded(self) -> bool:
        """Whether optuna stores the choices as JSON text (some are lists or mappings)."""
        return not all(isinstance(c, _PRIMITIVES) for c in self.choices)

    def optuna_choices(self) -> list[Any]:
        return [json.dumps(c) for c in self.choices] if self.encoded else list(self.choices)

    def candidates(self) -> list[Any]:
        return self.optuna_choices()


def _check_range(low: float, high: float) -> None:
    if not low < high:
        raise ValueError(f"low ({low}) must be smaller than high ({high})")


Parameter = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]


def _check_step(low: Decimal, high: Decimal, step: Decimal) -> None:
    """The range must hold a whole number of steps: Optuna would cut it short otherwise."""
    if (high - low) % step:
        fitted = low + (high - low) // step * step
        raise ValueError(
            f"step {step} does not divide the range {low}..{high}, which would end at {fitted}: "
            f"set high to {fitted} or {fitted + step}, or change the step"
        )
