"""The web portal (pages in templates/portal/ and templates/registration/)."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from alpha_platform.web.portal import views
from alpha_platform.web.portal.forms import ThrottledAdminAuthenticationForm

app_name = "portal"

# The admin's sign-in is throttled like the portal's (same counts: one lockout for both).
admin.site.login_form = ThrottledAdminAuthenticationForm

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    # Signing in and out
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password/", views.PasswordChangeView.as_view(), name="password_change"),
    path("password/done/", views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("signup/", views.signup, name="signup"),
    # Exchange accounts
    path("exchanges/", views.accounts, name="accounts"),
    path("exchanges/<int:pk>/test/", views.account_test, name="account_test"),
    path("exchanges/<int:pk>/delete/", views.account_delete, name="account_delete"),
    # Risk
    path("risk/", views.risk, name="risk"),
    path("kill-switch/", views.kill_switch, name="kill_switch"),
    path("kill-switch/lift/", views.kill_switch_lift, name="kill_switch_lift"),
    path("kill-switch/retry/", views.kill_switch_retry, name="kill_switch_retry"),
    # Agents and their decisions
    path("agents/", views.agents, name="agents"),
    path("agents/new/", views.agent_create, name="agent_create"),
    path("agents/<int:pk>/", views.agent_detail, name="agent_detail"),
    path("agents/<int:pk>/edit/", views.agent_edit, name="agent_edit"),
    path("agents/<int:pk>/pause/", views.agent_pause, name="agent_pause"),
    path("agents/<int:pk>/resume/", views.agent_resume, name="agent_resume"),
    path("agents/<int:pk>/run/", views.agent_run, name="agent_run"),
    path("agents/<int:pk>/delete/", views.agent_delete, name="agent_delete"),
    path("decisions/", views.decisions, name="decisions"),
    path("decisions/<int:pk>/", views.decision_detail, name="decision_detail"),
    # Orders
    path("orders/", views.orders, name="orders"),
    path("orders/<int:pk>/", views.order_detail, name="order_detail"),
    path("orders/<int:pk>/cancel/", views.order_cancel, name="order_cancel"),
]
