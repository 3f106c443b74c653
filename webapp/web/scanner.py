"""``/api/scanner``: the ranked lists, with the filters a client may tighten."""
from __future__ import annotations

from datetime import datetime

from flask import Blueprint, jsonify
from pydantic import BaseModel, Field

from webapp.core import scanner as scan_core
from webapp.core import scanner_live
from webapp.core.scanner import Filters
from webapp.services import context
from webapp.services import scanner as scanner_service
from webapp.web.access import PUBLIC
from webapp.web.apispec import Query, endpoint
from webapp.web.errors import ApiError
from webapp.web.stocks import Market

bp = Blueprint("scanner", __name__)


class ScanRow(BaseModel):
    ticker: str
    price: float | None
    change_pct: float | None = Field(description="% change vs previous close")
    gap_pct: float | None = Field(description="% gap of the day's open vs previous close")
    volume: float | None = Field(description="the reading's (minute) volume")
    day_volume: float | None = Field(description="cumulative volume since the session began")
    vwap: float | None = Field(description="session VWAP from the minute readings")
    rvol: float | None = Field(description="relative volume at this time of day; null without history")
    rvol_sessions: int = Field(description="earlier sessions RVOL averages (0: none)")
    rvol_note: str | None = Field(None, description="why rvol is null, when it is")
    vol_ratio: float | None = Field(description="minute volume / average of the recent minutes")
    unusual: bool
    new_high: bool
    new_low: bool
    time: datetime | None = Field(description="the reading's quote time")
    value: float | None = Field(None, description="what the list ranks by")


class LiveRow(BaseModel):
    """A row of a list only the scanner every second makes (running_up, hod_breaks …)."""

    ticker: str
    price: float | None
    value: float = Field(description="what the list ranks by: % move, break time (ms), volume ratio, "
                                     "halt time (ms)")
    why: str = Field(description='what put it there: "+2.40 % in 60 s", "broke HOD 101.2 (3× today)"')
    since: datetime | None = Field(None, description="the break, halt or resume")
    volume: float | None = Field(None, description="volume in the window")
    level: float | None = Field(None, description="the high (low) of the day it set")
    breaks: int | None = Field(None, description="seconds today in which it broke that extreme")
    status: str | None = Field(None, description='"halted" or "resumed"')
    code: str | None = Field(None, description="the halt's reason code, as the provider sent it")
    reason: str | None = None


class ScanFilters(BaseModel):
    min_price: float | None = None
    max_price: float | None = None
    min_volume: float | None = None
    min_rvol: float | None = None


class ScanList(BaseModel):
    list: str
    title: str
    rule: str
    as_of: datetime | None = Field(description="the tick the list comes from")
    stale: bool = Field(description="true when that tick is too old to act on")
    market: Market
    filters: ScanFilters = Field(description="the filters applied (configured, narrowed by the query)")
    rows: list[ScanRow] | list[LiveRow]
    live: bool = Field(description="announced each second by the scanner every second (the stream serves); "
                                   "false: the minute tick's")
    warming_up: bool = Field(False, description="the live lists' windows are not whole yet (a start, a "
                                                "takeover): not yet the market")
    session: str | None = Field(None, description="pre-market, regular, after-hours or closed")


class ScanIndex(BaseModel):
    lists: list[dict[str, str]]
    top: int
    depth: int


class ScanQuery(Query):
    limit: int = Field(25, ge=1, le=1000, description="at most SCAN_DEPTH rows without filters")
    min_price: float | None = Field(None, ge=0)
    max_price: float | None = Field(None, ge=0)
    min_volume: float | None = Field(None, ge=0, description="cumulative volume today")
    min_rvol: float | None = Field(None, ge=0)

    def problem(self) -> str | None:
        """What OpenAPI cannot say of these together (the API's 400 and the page's message)."""
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            return "min_price: must not exceed max_price"
        return None


@endpoint(bp, "/scanner", response=ScanIndex, summary="Scanner lists",
          auth=PUBLIC)
def scanner_index():
    cfg = context.config()
    return jsonify({"lists": [{"name": n, "title": scan_core.LIST_TITLES[n], "rule": scan_core.LIST_RULES[n]}
                              for n in scan_core.LISTS]
                   + [{"name": n, "title": scanner_live.LIVE_TITLES[n], "rule": scanner_live.LIVE_RULES[n]}
                      for n in scanner_live.LIVE_LISTS],
                    "top": cfg.SCAN_TOP, "depth": cfg.SCAN_DEPTH})


@endpoint(bp, "/scanner/<list_name>", response=ScanList, query=ScanQuery, summary="Scanner list",
          errors=(404,), auth=PUBLIC,
          path_schemas={"list_name": {"type": "string", "enum": list(scanner_service.ALL_LISTS)}})
def scanner_list(list_name: str, q: ScanQuery):
    if q.problem():
        raise ApiError(400, "bad_parameter", q.problem())
    extra = Filters(q.min_price, q.max_price, q.min_volume, q.min_rvol)
    limit = q.limit if extra != Filters() else min(q.limit, context.config().SCAN_DEPTH)
    try:
        return jsonify(scanner_service.scanner_list(list_name, limit, extra))
    except scanner_service.UnknownList as exc:
        raise ApiError(404, "unknown_list", str(exc)) from None
