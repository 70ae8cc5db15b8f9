"""The fake venue's account endpoints: account and balance (wallet, margins, unrealised
PnL), position risk (liquidation prices), leverage brackets, leverage and margin type, and the
user-data stream's listen key."""

from __future__ import annotations

import hashlib
import time
from decimal import Decimal
from typing import Any

from tests.fakes.binance_server.spec import (
    D0,
    MAINT_MARGIN_RATE,
    SYMBOLS,
    ApiError,
    _fmt,
    _now_ms,
)


class AccountMixin:
    """Account state as Binance reports it, and the settings an account changes."""

    def _listen_key(self, params: dict[str, str]) -> dict[str, Any]:
        # One key per API key, as Binance has it: POST returns the active key, PUT extends it.
        if not self.listen_keys:
            self.listen_keys.add(hashlib.sha256(f"{self.api_key}{time.time()}".encode()).hexdigest()[:60])
        return {"listenKey": next(iter(self.listen_keys))}

    # ------------------------------------------------------------------ account
    def _account(self, params: dict[str, str]) -> dict[str, Any]:
        upnl = sum((self._upnl(s) for s in SYMBOLS), D0)
        im = sum((self._initial_margin(s) for s in SYMBOLS), D0)
        mm = sum((abs(self._notional(s)) * MAINT_MARGIN_RATE for s in SYMBOLS), D0)
        available = self.wallet_balance + upnl - im
        q = "0.00000000"
        positions = []
        for s, p in self.positions.items():
            if p.amount == 0:
                continue
            positions.append({"symbol": s, "positionSide": "BOTH", "positionAmt": self._qty(s, p.amount),
                              "unrealizedProfit": _fmt(self._upnl(s), q), "isolatedMargin": "0",
                              "notional": _fmt(self._notional(s), q), "isolatedWallet": "0",
                              "initialMargin": _fmt(self._initial_margin(s), q),
                              "maintMargin": _fmt(abs(self._notional(s)) * MAINT_MARGIN_RATE, q),
                              "updateTime": p.updated})
        asset = {"asset": "USDT", "walletBalance": _fmt(self.wallet_balance, q),
                 "unrealizedProfit": _fmt(upnl, q), "marginBalance": _fmt(self.wallet_balance + upnl, q),
                 "maintMargin": _fmt(mm, q), "initialMargin": _fmt(im, q),
                 "positionInitialMargin": _fmt(im, q), "openOrderInitialMargin": "0.00000000",
                 "crossWalletBalance": _fmt(self.wallet_balance, q), "crossUnPnl": _fmt(upnl, q),
                 "availableBalance": _fmt(available, q), "maxWithdrawAmount": _fmt(available, q),
                 "updateTime": _now_ms()}
        return {"totalInitialMargin": _fmt(im, q), "totalMaintMargin": _fmt(mm, q),
                "totalWalletBalance": _fmt(self.wallet_balance, q),
                "totalUnrealizedProfit": _fmt(upnl, q), "totalMarginBalance": _fmt(self.wallet_balance + upnl, q),
                "totalPositionInitialMargin": _fmt(im, q), "totalOpenOrderInitialMargin": "0.00000000",
                "totalCrossWalletBalance": _fmt(self.wallet_balance, q), "totalCrossUnPnl": _fmt(upnl, q),
                "availableBalance": _fmt(available, q), "maxWithdrawAmount": _fmt(available, q),
                "assets": [asset], "positions": positions}

    def _balance(self, params: dict[str, str]) -> list[dict[str, Any]]:
        acc = self._account(params)
        a = acc["assets"][0]
        return [{"accountAlias": "SgsR", "asset": "USDT", "balance": a["walletBalance"],
                 "crossWalletBalance": a["crossWalletBalance"], "crossUnPnl": a["crossUnPnl"],
                 "availableBalance": a["availableBalance"], "maxWithdrawAmount": a["maxWithdrawAmount"],
                 "marginAvailable": True, "updateTime": _now_ms()}]

    def _position_risk(self, params: dict[str, str]) -> list[dict[str, Any]]:
        symbol = self._symbol(params, required=False)
        q = "0.00000000"
        out = []
        for s, p in self.positions.items():
            if (symbol and s != symbol) or p.amount == 0:
                continue  # v3 lists only symbols with a position
            lev = Decimal(self.leverage[s])
            mmr = MAINT_MARGIN_RATE
            if p.amount > 0:
                liq = p.entry * (1 - 1 / lev + mmr)
            else:
                liq = p.entry * (1 + 1 / lev - mmr)
            im = self._initial_margin(s)
            out.append({
                "symbol": s, "positionSide": "BOTH", "positionAmt": self._qty(s, p.amount),
                "entryPrice": _fmt(p.entry, "0.00000000"), "breakEvenPrice": _fmt(p.entry, "0.00000000"),
                "markPrice": _fmt(self.marks[s], q), "unRealizedProfit": _fmt(self._upnl(s), q),
                "liquidationPrice": _fmt(max(liq, D0), q),
                "isolatedMargin": "0" if self.margin_type[s] == "CROSSED" else _fmt(im, q),
                "notional": _fmt(self._notional(s), q), "marginAsset": "USDT",
                "isolatedWallet": "0" if self.margin_type[s] == "CROSSED" else _fmt(im, q),
                "initialMargin": _fmt(im, q), "maintMargin": _fmt(abs(self._notional(s)) * mmr, q),
                "positionInitialMargin": _fmt(im, q), "openOrderInitialMargin": "0", "adl": 1,
                "bidNotional": "0", "askNotional": "0", "updateTime": p.updated,
            })
        return out

    def _leverage_bracket(self, params: dict[str, str]) -> Any:
        symbol = self._symbol(params, required=False)

        def one(s: str) -> dict[str, Any]:
            return {"symbol": s, "notionalCoef": 1.0, "brackets": [
                {"bracket": 1, "initialLeverage": int(SYMBOLS[s]["max_leverage"]), "notionalCap": 50000,
                 "notionalFloor": 0, "maintMarginRatio": 0.004, "cum": 0.0},
                {"bracket": 2, "initialLeverage": 50, "notionalCap": 600000, "notionalFloor": 50000,
                 "maintMarginRatio": 0.005, "cum": 50.0},
            ]}

        return [one(symbol)] if symbol else [one(s) for s in SYMBOLS]

    def _set_leverage(self, params: dict[str, str]) -> dict[str, Any]:
        symbol = self._symbol(params)
        try:
            lev = int(params.get("leverage", ""))
        except ValueError:
            raise ApiError(400, -1102, "Mandatory parameter 'leverage' was not sent, was empty/null, or malformed.") from None
        if lev < 1 or lev > int(SYMBOLS[symbol]["max_leverage"]):
            raise ApiError(400, -4028, f"Leverage {lev} is not valid")
        self.leverage[symbol] = lev
        return {"leverage": lev, "maxNotionalValue": "50000", "symbol": symbol}

    def _set_margin_type(self, params: dict[str, str]) -> dict[str, Any]:
        symbol = self._symbol(params)
        wanted = params.get("marginType", "").upper()
        if wanted not in ("ISOLATED", "CROSSED"):
            raise ApiError(400, -4044, "The balance type is not valid.")
        if self.margin_type[symbol] == wanted:
            raise ApiError(400, -4046, "No need to change margin type.")
        if self.positions[symbol].amount != 0:
            raise ApiError(400, -4048, "Margin type cannot be changed if there exists position.")
        self.margin_type[symbol] = wanted
        return {"code": 200, "msg": "success"}
