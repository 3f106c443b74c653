"""Alert rules: what a rule says, what its operands are over a bar series, and when it fires.

Pure, and one evaluator: live ticks and replays both call
:func:`~webapp.core.rules.evaluate.evaluate_many` with bars and rule state and
get the same fires.  The modules, in the order a rule meets them:

* :mod:`~webapp.core.rules.model`: operands, conditions, rules (records);
* :mod:`~webapp.core.rules.parse`: a rule as sent, checked;
* :mod:`~webapp.core.rules.operands`: operand and condition values over bars;
* :mod:`~webapp.core.rules.state`: the state machine (fire or not, and the state after);
* :mod:`~webapp.core.rules.evaluate`: many rules at once, batched by condition shape;
* :mod:`~webapp.core.rules.explain`: a fire in words.

**A rule** is a condition (an operator over operands), a frequency, a
cooldown and an optional expiry (scope and channels are the store's).
Operands: bar fields (``open``, ``high``, ``low``, ``close``, ``volume``),
``price`` (the last: the bar's close), ``sma(n)`` and ``ema(n)`` of the
close, scanner metrics (``change_pct``, ``gap_pct``, ``vwap``, ``rvol``,
``day_volume``, ``prev_close``, ``day_high``, ``day_low``) and constants.

**Operators** (TradingView's set; ``x[1]`` is the previous bar's value):

* ``crossing_up``: ``a > b and a[1] <= b[1]`` (thinkorswim's crosses
  above, as the SMA alert has always been); ``crossing_down`` the mirror;
  ``crossing`` either;
* ``entering_channel``: outside ``[lower, upper]`` at ``[1]``, inside now;
  ``exiting_channel`` the reverse (edges);
* ``greater_than``, ``less_than``, ``inside_channel``, ``outside_channel``:
  states;
* ``moving_up`` / ``moving_down``: ``a - a[N] >= value`` (resp. ``a[N] - a
  >= value``) within ``bars`` = N, **against the value N bars ago**, not the
  window's low or high; ``moving_up_pct`` / ``moving_down_pct`` the same in
  percent of ``a[N]``.  These are states too.

A **state** fires when it *becomes* true and re-arms only after it was
false, so a price sitting above a level does not fire every bar (unless the
frequency is ``every_time``).  **Frequencies:** ``once`` (then the rule is
done for that ticker), ``once_per_bar``, ``once_per_bar_close`` (the
default) and ``every_time`` (whenever true, at most once a minute).  The
**cooldown** (default 300 s) holds further fires per rule and ticker; the
**storm breaker** stops a rule for a ticker (``stopped_too_often``) when it
would fire more than 15 times in 3 minutes.  A **stale** reading is never
fired on, and leaves the state as it was.  A missing value (NaN: an SMA
still filling, a metric the feed lacks) makes the condition false.
"""
