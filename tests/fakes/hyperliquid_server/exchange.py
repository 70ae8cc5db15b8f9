"""The fake venue's /exchange endpoint: the L1 action's signature recovered to an agent or
user (Hyperliquid's phantom-agent signing), nonces checked, then orders, cancels and leverage
updates validated and applied."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hyperliquid.utils.signing import recover_agent_or_user_from_l1_action

from tests.fakes.hyperliquid_server.state import (
    FakeAccount,
    FakeOrder,
    VenueRefusal,
)


class ExchangeMixin:
    """Signed actions: authentication, then orders, cancels, leverage."""

    # ------------------------------------------------------------------ /exchange
    def _exchange(self, body: dict[str, Any]) -> dict[str, Any]:
        action, nonce = body.get("action") or {}, body.get("nonce")
        signature, vault = body.get("signature") or {}, body.get("vaultAddress")
        try:
            signer = recover_agent_or_user_from_l1_action(
                action, signature, vault, nonce, body.get("expiresAfter"), self.is_mainnet
            ).lower()
        except Exception:  # noqa: BLE001 - an unreadable signature
            return {"status": "err", "response": "Invalid signature."}
        with self._lock:
            user = self.agents.get(signer) or (signer if signer in self.accounts else None)
            if user is None:
                # Hyperliquid's answer when the recovered address is nobody's agent.
                return {"status": "err", "response": f"User or API Wallet {signer} does not exist."}
            if vault is not None and vault.lower() != user:
                return {"status": "err", "response": "Vault not registered: " + vault.lower()}
            if vault is not None:
                user = vault.lower()
            used = self.nonces.setdefault(signer, set())
            if nonce in used:
                return {"status": "err", "response": "Invalid nonce: duplicate nonce"}
            used.add(nonce)
            account = self._account(user)
            kind = action.get("type")
            if kind == "order":
                return self._orders(account, action)
            if kind in ("cancel", "cancelByCloid"):
                return self._cancels(account, action)
            if kind == "updateLeverage":
                return self._update_leverage(account, action)
            return {"status": "err", "response": f"Unsupported action type {kind}"}

    def _update_leverage(self, account: FakeAccount, action: dict[str, Any]) -> dict[str, Any]:
        asset, leverage = int(action["asset"]), int(action["leverage"])
        if not 0 <= asset < len(self.assets):
            return {"status": "err", "response": f"Unknown asset {asset}"}
        coin = self.assets[asset]["name"]
        if leverage < 1 or leverage > self._max_leverage(coin):
            return {"status": "err", "response": "Invalid leverage value"}
        if coin in account.positions and not action["isCross"]:
            current = self._leverage(account, coin)
            if current[1]:
                return {"status": "err", "response": "Cannot switch leverage type with open position."}
        account.leverage[coin] = (leverage, bool(action["isCross"]))
        return {"status": "ok", "response": {"type": "default"}}

    def _cancels(self, account: FakeAccount, action: dict[str, Any]) -> dict[str, Any]:
        statuses: list[Any] = []
        for cancel in action["cancels"]:
            if action["type"] == "cancel":
                asset, order = int(cancel["a"]), self.orders.get(int(cancel["o"]))
            else:
                asset, order = int(cancel["asset"]), self.cloids.get((account.address, cancel["cloid"].lower()))
            live = order is not None and order.user == account.address and order.asset == asset and (
                order.status == "open" or (order.oid is None and order.status == "waitingForFill"))
            if not live:
                statuses.append({"error": f"Order was never placed, already canceled, or filled. asset={asset}"})
                continue
            self._set_status(order, "canceled")
            for child in order.children:
                if child.status in ("open", "waitingForFill"):
                    self._set_status(child, "canceled")
            statuses.append("success")
        return {"status": "ok", "response": {"type": "cancel", "data": {"statuses": statuses}}}

    def _orders(self, account: FakeAccount, action: dict[str, Any]) -> dict[str, Any]:
        wires, grouping = action["orders"], action.get("grouping", "na")
        statuses: list[Any] = []
        if grouping == "normalTpsl" and len(wires) > 1:
            built: list[FakeOrder] = []
            try:
                for i, w in enumerate(wires):
                    built.append(self._new_order(account, w, child=i > 0))
            except VenueRefusal as exc:
                for order in built:  # the group is refused as a whole
                    self.cloids.pop((order.user, order.cloid or ""), None)
                return {"status": "ok", "response": {"type": "order", "data": {
                    "statuses": [{"error": str(exc)}] * len(wires)}}}
            parent, children = built[0], built[1:]
            parent.children = children
            first = self._execute(account, parent)
            statuses.append(first)
            filled = "filled" in first
            for child in children:
                child.parent = parent.oid
                if filled:
                    self._activate(child)
                    statuses.append("waitingForTrigger")
                elif "error" in first:
                    self._set_status(child, "canceled")
                    self.cloids.pop((child.user, child.cloid or ""), None)
                    statuses.append({"error": first["error"]})
                else:
                    statuses.append("waitingForFill")
            if filled:
                self._sweep(parent.coin)
            return {"status": "ok", "response": {"type": "order", "data": {"statuses": statuses}}}
        for wire in wires:
            try:
                order = self._new_order(account, wire)
            except VenueRefusal as exc:
                statuses.append({"error": str(exc)})
                continue
            statuses.append(self._execute(account, order))
        return {"status": "ok", "response": {"type": "order", "data": {"statuses": statuses}}}

    def _new_order(self, account: FakeAccount, wire: dict[str, Any], child: bool = False) -> FakeOrder:
        asset = int(wire["a"])
        if not 0 <= asset < len(self.assets):
            raise VenueRefusal(f"Invalid asset {asset}")
        meta = self.assets[asset]
        coin, sz_dec = meta["name"], int(meta["szDecimals"])
        sz, px = Decimal(wire["s"]), Decimal(wire["p"])
        if sz <= 0 or sz != sz.quantize(Decimal(1).scaleb(-sz_dec)):
            raise VenueRefusal(f"Order has invalid size. asset={asset}")
        if not self._valid_price(px, sz_dec):
            raise VenueRefusal(f"Order has invalid price. asset={asset}")
        cloid = wire.get("c")
        if cloid is not None:
            cloid = cloid.lower()
            if (account.address, cloid) in self.cloids:
                raise VenueRefusal(f"Duplicate cloid {cloid}. asset={asset}")
        t = wire["t"]
        order = FakeOrder(oid=None, user=account.address, coin=coin, asset=asset, is_buy=bool(wire["b"]),
                          sz=sz, orig_sz=sz, limit_px=px, reduce_only=bool(wire["r"]),
                          tif=t["limit"]["tif"] if "limit" in t else None, cloid=cloid)
        if "trigger" in t:
            trig = Decimal(t["trigger"]["triggerPx"])
            if not self._valid_price(trig, sz_dec):
                raise VenueRefusal(f"Order has invalid price. asset={asset}")
            order.trigger_px, order.tpsl = trig, t["trigger"]["tpsl"]
            order.is_market = bool(t["trigger"]["isMarket"])
        if child:
            order.status = "waitingForFill"
        if cloid is not None:
            self.cloids[(account.address, cloid)] = order
        return order

    @staticmethod
    def _valid_price(px: Decimal, sz_decimals: int) -> bool:
        if px <= 0:
            return False
        if px == px.to_integral_value():
            return True
        digits = px.normalize().as_tuple()
        decimals = -digits.exponent
        significant = len(digits.digits)
        return decimals <= 6 - sz_decimals and significant <= 5
