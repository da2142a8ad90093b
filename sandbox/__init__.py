"""The sandbox: fake WeChat, WeChat Pay v3 and Kuaidi100 servers speaking the real wire
protocols, so the real client libraries run end to end where the real services are unreachable.

A Django app of its own (label `sandbox`), installed, migrated and routed under /sandbox/ only
where settings.SANDBOX_ENABLED (project/settings.py, project/urls.py): production has none of
its tables, URLs or periodic tasks. Clients reach it through `SandboxAdapter`, a requests
transport adapter that marketplace.gateways.partner_session mounts on their HTTP sessions for
the real service hosts (through sandbox/seam.py, the one module the clients import).
"""
