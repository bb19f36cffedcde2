"""Builds the PACS from its parts. The host adapter calls `create_app` once
and then hands every request and change event to the returned `App`."""

import logging

from plugin import db, health, logs, migrations
from plugin.config import Settings
from plugin.http import Router
from plugin.ingest import Ingest

LOGGER = logging.getLogger(__name__)


class App:
    def __init__(self, host, settings):
        self.host = host
        self.settings = settings
        self.router = Router()
        self.ingest = Ingest(host, settings.reconcile_interval)
        health.register(self.router, host, settings)

    def handle(self, request):
        """Answer one HTTP request (any Orthanc HTTP thread)."""
        with db.connection_scope():
            return self.router.dispatch(request)

    def on_change(self, change, level, resource_id):
        """One Orthanc change event (Orthanc's change thread): must stay cheap."""
        self.ingest.on_change(change, level, resource_id)


def create_app(host, environ=None):
    settings = Settings.from_configuration(host.configuration(), environ)
    logs.configure(settings.log_level)
    try:
        database = db.open_database(settings.database_url)
        migrations.migrate(database)
    except Exception as error:
        LOGGER.error("event=database_unavailable url=%s error=%s",
                     db.redact(settings.database_url), str(error).strip().replace("\n", " "))
        raise
    LOGGER.info("event=plugin_ready database=%s data_dir=%s",
                settings.database_url.split("://", 1)[0], settings.data_dir)
    return App(host, settings)
