"""PostgreSQL backend that starts the embedded server before its first connection."""

from pathlib import Path

from django.db.backends.postgresql import base

from echoroo.embedded import ensure_server


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self) -> dict:
        socket_dir = ensure_server(
            Path(self.settings_dict["PGDATA"]),
            self.settings_dict["NAME"] or "postgres",
            cleanup=self.settings_dict.get("PGDATA_CLEANUP", "stop"),
        )
        # dbshell and other clients read HOST from the settings, so keep it there too.
        self.settings_dict["HOST"] = str(socket_dir)
        params = super().get_connection_params()
        params["host"] = str(socket_dir)
        params.setdefault("user", "postgres")
        return params
