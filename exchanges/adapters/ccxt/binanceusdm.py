"""Binance USD-M futures over ccxt (``binanceusdm``): only what is Binance's own.

The URL layout of the futures API, ccxt options, client id rules, the codes our error
hierarchy splits finer than ccxt does, how conditional (algo) orders are addressed, and
the fields ccxt does not unify (wallet balance, maintenance margin, a trade's realized
PnL, hedge-mode position sides). Everything else is read from ccxt's unified structures
by ``CcxtTrader``.
"""

from __future__ import annotations

import re
from dataclasses import replace
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

from exchanges.adapters.base import D0, OrderResult, OrderType, PositionSide
from exchanges.adapters.ccxt.base import CcxtTrader
from exchanges.adapters.ccxt.wire import dec, first
from exchanges.adapters.errors import BadPrecision, ExchangeError


class BinanceUsdmTrader(CcxtTrader):
    DEFAULT_CCXT_ID = "binanceusdm"
    API_URL_PATHS: ClassVar[dict[str, str]] = {
        # Only these: ccxt refuses (NotSupported) any other API section instead of calling
        # a host we did not configure.
        "fapiPublic": "/fapi/v1", "fapiPublicV2": "/fapi/v2", "fapiPublicV3": "/fapi/v3",
        "fapiPrivate": "/fapi/v1", "fapiPrivateV2": "/fapi/v2", "fapiPrivateV3": "/fapi/v3",
        "fapiData": "/futures/data",
    }
    # ccxt's binance keys its per-market error tables on https://fapi.binance.com/...; these
    # paths under whatever base URL is configured are the same USD-M ("linear") API.
    EXCEPTION_URL_SECTIONS: ClassVar[dict[str, str]] = {"/fapi/": "linear", "/futures/data": "linear"}
    CCXT_OPTIONS: ClassVar[dict[str, Any]] = {
        "defaultType": "swap",
        "fetchMarkets": {"types": ["linear"]},
        "fetchCurrencies": False,  # a spot (sapi) call with keys; futures need none of it
        "fetchMargins": False,
        "adjustForTimeDifference": False,
        "warnOnFetchOpenOrdersWithoutSymbol": False,
        "fetchOpenOrders": {"warnWithoutSymbol": False},
        "setMarginMode": {"throwMarginModeAlreadySet": False},
        "disableFuturesSandboxWarning": True,
    }
    CLIENT_ID_MAX = 36
    CLIENT_ID_RE = re.compile(r"[.A-Za-z0-9:/_-]{1,36}")
    QUOTE = "USDT"
    CAPABILITIES: ClassVar[dict[str, Any]] = {
        "conditional_endpoint": True,  # stop / take-profit orders are algo orders, in their own book
        "book_ticker": True,
        "fetch_fills": True,
        "supports_attached_tp_sl": False,  # placed as separate reduce-only orders once the entry fills
        "supports_reduce_only": True,
        "has_user_stream": True,
    }
    # ccxt classes these as BadRequest (InvalidOrderError for us); they are precision refusals.
    ERROR_REFINEMENTS: ClassVar[dict[str, type[ExchangeError]]] = {
        code: BadPrecision for code in ("-1111", "-4003", "-4004", "-4014", "-4023", "-4029", "-4030")
    }
    MARGIN_ALREADY_SET_CODES = frozenset({"-4046"})
    DUPLICATE_CLIENT_ID_CODES = frozenset({"-4116"})

    def _lookup_params(self, client_order_id: str | None, conditional: bool) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if client_order_id:  # the two books name the client id differently
            params["clientOrderId" if conditional else "origClientOrderId"] = client_order_id
        if conditional:
            params["trigger"] = True
        return params

    def _order_position_side(self, order: Mapping[str, Any]) -> PositionSide | None:
        raw = str((order.get("info") or {}).get("positionSide") or "").upper()
        return PositionSide(raw) if raw in PositionSide.__members__ else None  # "BOTH": one-way mode

    def _trade_realized_pnl(self, trade: Mapping[str, Any]) -> Decimal:
        return dec(first(trade.get("info"), "realizedPnl")) or D0

    def _execution_order_id(self, result: OrderResult) -> str:
        if result.order_type in (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET):
            # A triggered algo order names the regular order it became, where its trades are;
            # that regular order itself (found by the same client id) carries no algoId.
            raw = result.raw_data
            return str(raw.get("actualOrderId") or ("" if "algoId" in raw else result.order_id))
        return super()._execution_order_id(result)

    def _order_result(self, order: Mapping[str, Any], *, position_side: PositionSide | None = None) -> OrderResult:
        result = super()._order_result(order, position_side=position_side)
        if result.executed_price is None and result.executed_quantity > 0:
            # ccxt leaves a finished algo order's "average" empty; Binance reports actualPrice.
            price = dec(first(order.get("info"), "actualPrice"))
            if price:
                result = replace(result, executed_price=price)
        return result

    def _order_trades(self, exchange: Any, unified: str, order_id: str) -> list[dict[str, Any]]:
        # ccxt's fetchOrderTrades is spot-only on binance; userTrades filters by orderId.
        return exchange.fetch_my_trades(unified, params={"orderId": order_id})

    def _balance_extras(self, balance: Mapping[str, Any]) -> dict[str, Any]:
        info = balance.get("info") or {}
        asset = next((a for a in info.get("assets") or [] if a.get("asset") == self.QUOTE), {})

        def pick(asset_key: str, total_key: str) -> Decimal | None:
            value = dec(asset.get(asset_key))
            return value if value is not None else dec(info.get(total_key))

        extras: dict[str, Any] = {"can_trade": bool(info.get("canTrade", True))}
        for ours, asset_key, total_key in (("wallet_balance", "walletBalance", "totalWalletBalance"),
                                           ("unrealized_pnl", "unrealizedProfit", "totalUnrealizedProfit"),
                                           ("maintenance_margin", "maintMargin", "totalMaintMargin")):
            value = pick(asset_key, total_key)
            if value is not None:
                extras[ours] = value
        return extras
