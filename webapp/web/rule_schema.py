"""An alert rule's condition and scope as JSON Schema, for the OpenAPI document.

The API checks a rule with the rule parser (:mod:`webapp.core.rules.parse`),
whose messages name the part that is wrong (``condition.b: sma takes a whole
period from 1 to 500``); these models describe the same language to
integrators, one branch per operator with the operands it takes and their
ranges, so a client can see the operators in ``/api/openapi.json`` and
schemathesis can generate valid rules.  Both are built from the same
constants (:mod:`webapp.core.rules.model`), and the schemathesis test holds
them together: what this schema allows, the parser accepts.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, RootModel, StringConstraints, create_model

from webapp.core.rules.model import (
    CHANNEL_OPS,
    FIELDS,
    MAX_NUMBER,
    MAX_PARTS,
    MAX_PERIOD,
    MAX_SIGNAL_SECONDS,
    METRICS,
    MOVING_OPS,
    OPERATORS,
    PAIR_OPS,
    SIGNAL_OPS,
)
from webapp.core.rules.parse import MAX_SCOPE_TICKERS, MAX_SPIKE_K
from webapp.core.scanner import LISTS
from webapp.web.apispec import TICKER_SCHEMA

_STRICT = ConfigDict(extra="forbid")
Number = Annotated[float, Field(ge=-MAX_NUMBER, le=MAX_NUMBER, allow_inf_nan=False)]
Period = Annotated[int, Field(ge=1, le=MAX_PERIOD)]


class FieldOperand(BaseModel):
    """A field of the bar."""

    model_config = _STRICT
    field: Literal[FIELDS]  # type: ignore[valid-type]


class PriceOperand(BaseModel):
    """The last price (the bar's close)."""

    model_config = _STRICT
    price: Literal[True]


class SmaOperand(BaseModel):
    """The simple moving average of the close over n bars (exact at the quote's precision)."""

    model_config = _STRICT
    sma: Period


class EmaOperand(BaseModel):
    """The exponential moving average of the close over n bars."""

    model_config = _STRICT
    ema: Period


Fraction = Annotated[float, Field(gt=0, le=10, allow_inf_nan=False)]


def _study(kind: str, args: Any, doc: str) -> type[BaseModel]:
    return create_model("".join(p.title() for p in kind.split("_")) + "Operand", __config__=_STRICT,
                        __doc__=doc, **{kind: (args, ...)})


STUDY_OPERANDS = (
    _study("rsi", Union[Period, tuple[Period]],  # noqa: UP007
           "RSI(n) of the close, as the chart draws it (Wilder's, over its last 30n+1 bars)."),
    *(_study(k, Union[Period, tuple[Period], tuple[Period, Fraction]],  # noqa: UP007
             f"The Bollinger {k[3:]} band: n, or [n, k] (k standard deviations, above 0, at most 10).")
      for k in ("bb_upper", "bb_middle", "bb_lower")),
    *(_study(k, Union[Period, tuple[Period], tuple[Period, Period], tuple[Period, Period, Period]],  # noqa: UP007
             f"MACD's {k.replace('_', ' ')} line: fast, or [fast, slow, signal] (12, 26, 9 where left "
             "out; fast shorter than slow, which OpenAPI cannot state).")
      for k in ("macd", "macd_signal", "macd_histogram")),
)


class MetricOperand(BaseModel):
    """A scanner metric of the ticker."""

    model_config = _STRICT
    metric: Literal[METRICS]  # type: ignore[valid-type]


class ConstOperand(BaseModel):
    """A number."""

    model_config = _STRICT
    const: Number


Operand = Union[(FieldOperand, PriceOperand, SmaOperand, EmaOperand, *STUDY_OPERANDS,
                 MetricOperand, ConstOperand)]


SIGNAL_DOCS = {
    "new_high_of_day": "The trade is above the day's high so far (judged on the print).",
    "new_low_of_day": "The trade is below the day's low so far (judged on the print).",
    "volume_spike": "The last window's volume (60 s) is at least k times what the RVOL profile expects of "
                    "it at this time of day (judged on the print).",
    "halted": "The provider reported a halt (judged at its status message).",
    "resumed": "The halt ended, within the last 10 minutes (judged at the status message and the "
               "trades after).",
}


def _branch(op: str) -> type[BaseModel]:
    """One operator's condition: the operands (and numbers) it takes, nothing else."""
    name = "".join(part.title() for part in op.split("_")) + "Condition"
    if op in SIGNAL_OPS:
        extra: dict[str, Any] = ({"k": (Annotated[float, Field(gt=0, le=MAX_SPIKE_K, allow_inf_nan=False)],
                                        Field(description="the volume's multiple of the expected"))}
                                 if op == "volume_spike" else {})
        return create_model(name, __config__=_STRICT, __doc__=SIGNAL_DOCS[op], op=(Literal[op], ...), **extra)
    fields: dict[str, Any] = {"op": (Literal[op], ...), "a": (Operand, ...)}
    if op in PAIR_OPS:
        fields["b"] = (Operand, ...)
    elif op in CHANNEL_OPS:
        fields["lower"] = (Operand, ...)
        fields["upper"] = (Operand, ...)
    else:
        fields["bars"] = (Period | None, Field(None, description="N: measured against the value N bars ago "
                                                             "(give bars or seconds)"))
        fields["seconds"] = (Annotated[int, Field(ge=1, le=MAX_SIGNAL_SECONDS)] | None, Field(
            None, description="or against the price this many seconds ago, judged on the print "
                              "(moving_*_pct of {\"price\": true} only)"))
        fields["value"] = (Annotated[float, Field(gt=0, le=MAX_NUMBER, allow_inf_nan=False)],
                           Field(description="the move, in the operand's units (or percent for *_pct)"))
    return create_model(name, __config__=_STRICT, **fields)


BRANCHES = tuple(_branch(op) for op in OPERATORS if op != "all")
assert set(OPERATORS) == set(PAIR_OPS) | set(CHANNEL_OPS) | set(MOVING_OPS) | set(SIGNAL_OPS) | {"all"}
Leaf = Annotated[Union[BRANCHES], Field(discriminator="op")]  # type: ignore[valid-type]  # noqa: UP007


class AllCondition(BaseModel):
    """Every one of these holds at the same trade (or bar): "breaks its high of day on 2× volume"."""

    model_config = _STRICT
    op: Literal["all"]
    of: list[Leaf] = Field(min_length=2, max_length=MAX_PARTS)  # type: ignore[valid-type]


class Condition(RootModel[Annotated[Union[(*BRANCHES, AllCondition)], Field(discriminator="op")]]):  # type: ignore[valid-type]
    """An operator over operands (TradingView's operators; ``x[1]`` is the previous bar), a signal of
    the live tape (judged on the print: the rule's frequency must be intra-bar), or ``all`` of them."""


class TickersScope(BaseModel):
    model_config = _STRICT
    tickers: list[Annotated[str, StringConstraints(pattern=TICKER_SCHEMA["pattern"])]] = Field(
        min_length=1, max_length=MAX_SCOPE_TICKERS)


class AllScope(BaseModel):
    model_config = _STRICT
    all: Literal[True]


class ScanScope(BaseModel):
    model_config = _STRICT
    scan: Literal[LISTS]  # type: ignore[valid-type]


class Scope(RootModel[Union[TickersScope, AllScope, ScanScope]]):  # noqa: UP007
    """Which tickers a rule watches: a list, every tracked symbol, or a scanner list's members."""


SCHEMAS: tuple[type[BaseModel], ...] = (Condition, Scope)  # components the rule body refers to
