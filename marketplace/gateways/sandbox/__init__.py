"""The sandbox: fake WeChat (and later WeChat Pay v3, Kuaidi100) servers speaking the real wire
protocols, so the real client libraries run end to end where the real services are unreachable.

Clients reach it through `SandboxAdapter`, a requests transport adapter mounted on their HTTP
sessions for the real service hosts; only settings.SANDBOX_ENABLED mounts it.
"""
